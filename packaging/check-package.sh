#!/bin/sh
# Installs the .deb that package.sh built into a throwaway root (a Podman container over the
# Debian root filesystem the test command builds, its changes discarded), runs `credd --version`
# and `credd status` from it with a fresh HOME, removes it, and checks that it is gone. The
# tarball's checksum is checked too. For CI, after package.sh.
set -eu
cd "$(dirname "$0")/.."
out="$PWD/target/package"
deb=$(ls "$out"/credd_*.deb)
rootfs="${CREDD_ROOTFS:-$PWD/target/peers/rootfs}"
(cd "$out" && sha256sum -c --quiet ./*.sha256)
echo "==> installing $(basename "$deb") into a throwaway root"
podman run --runtime runc --rm --network none --ulimit nofile=20000:20000 --ulimit nproc=1000:1000 \
    -v "$out:/package:ro" --rootfs "$rootfs:O" sh -euc '
        dpkg -i /package/'"$(basename "$deb")"' >/dev/null
        export HOME=$(mktemp -d)
        /usr/bin/credd --version
        /usr/bin/credd status
        test -f /usr/lib/systemd/user/credd.socket
        grep -q "^ExecStart=/usr/bin/credd-daemon$" /usr/lib/systemd/user/credd.service
        /usr/bin/credd stop
        dpkg -r credd >/dev/null
        for f in /usr/bin/credd /usr/bin/credd-daemon /usr/lib/systemd/user/credd.socket; do
            if [ -e "$f" ]; then echo "$f is still there after dpkg -r" >&2; exit 1; fi
        done
        echo "removed"
    '
