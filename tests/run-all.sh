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
# Build once (binaries and test executables), then run the tests on that build.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked --no-fail-fast
# The patches to vendored crates (node/vendor), tested in a copy of each.
bash tests/vendor-patches.sh
# Then every fuzz target for a bounded time (30 s each), from the committed seeds.
bash tests/fuzz/run.sh
