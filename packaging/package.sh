#!/bin/sh
# Builds credd's packages for this machine into target/package/: a .deb (with Debian's own
# dpkg-deb) and a tarball with the same files and its SHA-256 checksum. Both hold credd (the
# static client where the platform allows, as install.sh builds it), credd-daemon, the systemd
# user units (for /usr/bin), the shell completions and the man page. Needs Rust to build, not
# to install.
#   sh packaging/package.sh            # then: sudo apt install ./target/package/credd_*.deb
set -eu
cd "$(dirname "$0")/.."
# The files installed are read by everyone: not private, whatever the caller's umask.
umask 022

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "package.sh: no version in Cargo.toml" >&2; exit 1; }
echo "==> building credd-daemon"
cargo build --locked --release -p credd-daemon
target="$(sh packaging/static-client-target.sh)"
echo "==> building credd${target:+ (static, $target)}"
if [ -n "$target" ]; then
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --locked --profile client -p credd --target "$target"
    client="target/$target/client/credd"
else
    cargo build --locked --profile client -p credd
    client="target/client/credd"
fi

out="$PWD/target/package"
root="$out/root"
rm -rf "$out"
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd/user" "$root/usr/share/man/man1" \
    "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/doc/credd"
install -m 0755 "$client" "$root/usr/bin/credd"
install -m 0755 target/release/credd-daemon "$root/usr/bin/credd-daemon"
strip "$root/usr/bin/credd" "$root/usr/bin/credd-daemon" 2>/dev/null || true
install -m 0644 packaging/systemd/credd.socket "$root/usr/lib/systemd/user/credd.socket"
sed 's|^ExecStart=.*|ExecStart=/usr/bin/credd-daemon|' packaging/systemd/credd.service \
    > "$root/usr/lib/systemd/user/credd.service"
chmod 0644 "$root/usr/lib/systemd/user/credd.service"
gzip -9n < packaging/man/credd.1 > "$root/usr/share/man/man1/credd.1.gz"
install -m 0644 packaging/completions/credd.bash "$root/usr/share/bash-completion/completions/credd"
install -m 0644 packaging/completions/_credd "$root/usr/share/zsh/vendor-completions/_credd"
install -m 0644 packaging/completions/credd.fish "$root/usr/share/fish/vendor_completions.d/credd.fish"
install -m 0644 README.md "$root/usr/share/doc/credd/README.md"

arch=$(uname -m)
tarball="$out/credd-$version-$arch-linux.tar.gz"
(cd "$root" && tar --owner=0 --group=0 -czf "$tarball" usr)
(cd "$out" && sha256sum "$(basename "$tarball")" > "$(basename "$tarball").sha256")
echo "==> $tarball"

if command -v dpkg-deb >/dev/null 2>&1; then
    debarch=$(dpkg --print-architecture)
    deb="$out/credd_${version}_${debarch}.deb"
    mkdir -p "$root/DEBIAN"
    cat > "$root/DEBIAN/control" <<CONTROL
Package: credd
Version: $version
Architecture: $debarch
Maintainer: credd <credd@users.noreply.github.com>
Depends: libc6 (>= 2.34), libgcc-s1
Section: utils
Priority: optional
Homepage: https://github.com/credd/credd
Description: caches and refreshes cloud credentials for Claude Code and the cloud SDKs
 credd-daemon fetches, caches and refreshes AWS, Google Cloud and Microsoft Entra ID
 credentials before they expire; credd hands them to Claude Code's helpers, the AWS
 credential_process, local SDK endpoints and an authenticating proxy. Run
 "credd init" to start from the sign-ins the machine already has.
CONTROL
    dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
    rm -rf "$root/DEBIAN"
    (cd "$out" && sha256sum "$(basename "$deb")" > "$(basename "$deb").sha256")
    echo "==> $deb"
fi
