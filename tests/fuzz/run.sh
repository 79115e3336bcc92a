#!/usr/bin/env bash
# Runs every fuzz target of tests/fuzz for a bounded time, starting from the committed seeds
# (tests/fuzz/seeds/<target>), and fails if any target crashes, hangs or runs out of memory.
# Part of tests/run-all.sh; also the command for the longer runs recorded in docs/security.md.
#
#   bash tests/fuzz/run.sh                    # 30 s per target
#   FUZZ_SECONDS=300 bash tests/fuzz/run.sh   # longer run
#   bash tests/fuzz/run.sh dhcp tftp          # only these targets
#
# The toolchain is stable Rust: cargo-fuzz passes -Z flags (sanitizer, coverage passes) to
# rustc, which stable accepts only with RUSTC_BOOTSTRAP=1. The build uses AddressSanitizer and
# debug assertions (so integer overflow panics), in its own target dir tests/fuzz/target.
# A crashing input is kept in tests/fuzz/artifacts/<target>/ and printed in hex; turn it into a
# regression test in the crate it crashed, then fix the code.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-30}

if ! command -v cargo-fuzz >/dev/null; then
    echo "fuzz: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi
command -v c++ >/dev/null || { echo "fuzz: no C++ compiler (libFuzzer is C++): run tests/install-deps.sh" >&2; exit 1; }

export RUSTC_BOOTSTRAP=1
flags=(--fuzz-dir tests/fuzz --sanitizer address --debug-assertions)
cargo fuzz build "${flags[@]}"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list --fuzz-dir tests/fuzz)
work=$(mktemp -d "/tmp/netboot-fuzz.$$.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
    seeds=tests/fuzz/seeds/$target
    [ -d "$seeds" ] || { echo "fuzz: no seeds for target $target ($seeds)" >&2; exit 1; }
    artifacts=tests/fuzz/artifacts/$target
    mkdir -p "$work/$target" "$artifacts"
    # The first corpus dir receives new inputs: a scratch dir, so the seeds stay as committed.
    if cargo fuzz run "${flags[@]}" "$target" "$work/$target" "$seeds" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$work/$target.log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log")
        corpus=$(find "$work/$target" -type f | wc -l)
        cov=$(grep -o 'cov: [0-9]*' "$work/$target.log" | tail -1)
        echo "fuzz: $target: ${runs:-?} executions in ${seconds} s, $cov, $corpus new corpus inputs, no crash"
    else
        failed+=("$target")
        echo "fuzz: $target FAILED; the end of its log:" >&2
        tail -n 60 "$work/$target.log" >&2
        for f in "$artifacts"/*; do
            [ -f "$f" ] || continue
            echo "fuzz: input $f:" >&2
            od -A x -t x1z "$f" | head -n 40 >&2
        done
    fi
done
# The closing line counts targets, in the form CI reads for any runner.
echo "fuzz: $(( ${#targets[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: targets that failed: ${failed[*]} (inputs in tests/fuzz/artifacts/)" >&2
    exit 1
fi
