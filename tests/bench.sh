#!/usr/bin/env bash
# Runs credd's benchmarks: release build, a Python with boto3 for the comparison, then
# `cargo bench -p credd-tests`. Extra arguments go to the environment, e.g.
#   CREDD_BENCH_SECS=60 bash tests/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$PWD/target/peers/venv"
if ! "$venv/bin/python" -c "import boto3" 2>/dev/null; then
    echo "==> installing boto3 into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check boto3
fi
export CREDD_BENCH_PYTHON="$venv/bin/python"

cargo build --locked --release --bins
# The client as packaging/install.sh installs it: the `client` profile (built for size, aborts
# on panic), statically linked where that applies.
target="$(sh packaging/static-client-target.sh)"
if [ -n "$target" ]; then
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --locked --profile client -p credd --target "$target"
    export CREDD_CLIENT_BIN="$PWD/target/$target/client/credd"
else
    cargo build --locked --profile client -p credd
    export CREDD_CLIENT_BIN="$PWD/target/client/credd"
fi
cargo bench --locked -p credd-tests
