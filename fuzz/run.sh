#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30) on the committed corpus.
#
# libFuzzer through cargo-fuzz, on the stable toolchain: `--sanitizer none` is the mode that
# needs no nightly (no AddressSanitizer). The build is optimized (`-O`) with debug assertions
# and overflow checks on (`-a`), so Rust's own checks and the targets' assertions catch what
# they catch. New inputs that reach new code are added to fuzz/corpus/<target>; a failure
# leaves its input in fuzz/artifacts/<target> and fails the run, as does a fuzzer that exits
# non-zero for any other reason.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz from crates.io"
    cargo install --locked cargo-fuzz
fi

targets=$(cargo fuzz list)
echo "==> building the fuzz targets: $(echo $targets)"
cargo fuzz build --sanitizer none -O -a

failed=()
for target in $targets; do
    echo "==> fuzzing $target for ${seconds}s"
    log="$(mktemp)"
    status=0
    cargo fuzz run --sanitizer none -O -a "$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        # The whole output: the panic message, the input and how to reproduce it.
        cat "$log" >&2
        echo "fuzz target $target failed (exit $status); any input is in fuzz/artifacts/$target" >&2
        failed+=("$target")
    else
        grep -E "^(Done|#[0-9]+ +DONE)|stat::number_of_executed_units" "$log" || true
    fi
    rm -f "$log"
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzzing failed: ${failed[*]}" >&2
    exit 1
fi
