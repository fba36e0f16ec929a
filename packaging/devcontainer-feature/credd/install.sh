#!/bin/sh
# Installs the credd client into a devcontainer image, as the Feature's install step. The
# client is the static one `packaging/install.sh` builds, placed beside this script
# (`cp "$(command -v credd)" .devcontainer/credd/credd`): the image needs no network and no
# Rust, and the client is the same release as the daemon it talks to on the host.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! [ -f "$here/credd" ]; then
    echo "credd Feature: put the credd client beside install.sh ($here/credd) first; packaging/install.sh builds the static one" >&2
    exit 1
fi
install -d /usr/local/bin
install -m 0755 "$here/credd" /usr/local/bin/credd
/usr/local/bin/credd --version
