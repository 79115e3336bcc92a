#!/usr/bin/env bash
# Runs every netboot test on a fresh Debian machine (as root): installs what the tests need,
# builds the workspace once, runs all tests against that build, then a short bounded run of
# every fuzz target (tests/fuzz/run.sh).
#
#   bash tests/run-all.sh
#
# Tests that need root, network namespaces or QEMU are part of "all": when a prerequisite is
# missing they fail with a message naming it, they are never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh
# A run from scratch writes about 5.4 GB: the debug build and its test executables (~2.4 GB),
# the vendored crates' test build (~0.6 GB) and the fuzz build (~2.3 GB). On a full disk the
# linker dies with a bus error that names no disk, so check first, counting what an earlier run
# built.
need_mb=6000
built_mb=$({ du -smc target tests/fuzz/target 2>/dev/null || true; } | awk 'END { print $1 + 0 }')
free_mb=$(df -Pm . | awk 'NR == 2 { print $4 }')
if [ $(( ${free_mb:-0} + built_mb )) -lt "$need_mb" ]; then
    echo "run-all: ${free_mb} MB free on the disk of $PWD and ${built_mb} MB already built; a full run needs about ${need_mb} MB there (target/, tests/fuzz/target/)" >&2
    exit 1
fi
# A single build gains nothing from incremental caches (~1 GB on disk): turn them off.
export CARGO_INCREMENTAL=0
# Build once (binaries and test executables), then run the tests on that build.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked --no-fail-fast
# The patches to vendored crates (node/vendor), tested in a copy of each.
bash tests/vendor-patches.sh
# Then every fuzz target for a bounded time (30 s each), from the committed seeds.
bash tests/fuzz/run.sh
