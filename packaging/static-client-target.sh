#!/bin/sh
# Prints the target to build a statically linked `credd` for, or nothing where credd builds
# it the usual way. The client runs once per credential request, so the dynamic loader's work
# at each start is a large part of its cost; on glibc Linux it is linked statically
# (`-C target-feature=+crt-static`, which needs an explicit --target so that build scripts
# and proc macros stay dynamic).
case "$(uname -s)-$(uname -m)" in
    Linux-x86_64 | Linux-aarch64)
        if ldd --version 2>&1 | grep -qiE 'glibc|gnu libc'; then
            echo "$(uname -m)-unknown-linux-gnu"
        fi
        ;;
esac
