#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30) on the committed corpus.
#
# libFuzzer through cargo-fuzz, on the stable toolchain: `--sanitizer none` is the mode that
# needs no nightly (no AddressSanitizer; Rust's own checks, debug assertions and the targets'
# assertions still catch what they catch). New inputs that reach new code are added to
# fuzz/corpus/<target>; a crash leaves its input in fuzz/artifacts/<target> and fails the run.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz from crates.io"
    cargo install --locked cargo-fuzz
fi

targets=$(cargo fuzz list)
echo "==> building the fuzz targets: $(echo $targets)"
cargo fuzz build --sanitizer none -O

for target in $targets; do
    echo "==> fuzzing $target for ${seconds}s"
    cargo fuzz run --sanitizer none -O "$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>&1 |
        grep -E "^(Done|#[0-9]+ +DONE)|stat::number_of_executed_units|ERROR|panicked|SUMMARY|Test unit written" || true
    if [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
        echo "fuzz target $target crashed; the input is in fuzz/artifacts/$target" >&2
        exit 1
    fi
done
