#!/bin/sh
# Installs credd and credd-daemon for the current user from this checkout, then runs
# credd-daemon as a user service (systemd socket activation, or a launchd agent on macOS).
# Undo with: credd service uninstall && cargo uninstall credd credd-daemon
set -eu
cd "$(dirname "$0")/.."

command -v cargo >/dev/null 2>&1 || {
    echo "install.sh: cargo is needed; install Rust from https://rustup.rs and run this again" >&2
    exit 1
}
echo "==> installing credd-daemon"
cargo install --locked --path daemon
echo "==> installing credd (built for size and start-up)"
target="$(sh packaging/static-client-target.sh)"
if [ -n "$target" ]; then
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo install --locked --profile client --target "$target" --path helper-cli
else
    cargo install --locked --profile client --path helper-cli
fi
bin="${CARGO_HOME:-$HOME/.cargo}/bin"
echo "==> setting up the user service"
"$bin/credd" service install
"$bin/credd" status
