#!/usr/bin/env bash
# Runs the tests of netboot's patches to vendored crates (node/vendor/README.md) against the
# patched copy: the unit tests of the module patched (for noq-proto, upstream's BBRv3 tests
# too: a patch must not break them), among them ours, named `netboot_patch_*`. A vendored crate is not a
# workspace member (it is not our code), and cargo will not test it in place inside this
# workspace, so each is copied out first, with the workspace's Cargo.lock for the versions
# they share. Fails if a crate has no such test.
#
#   bash tests/vendor-patches.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d /tmp/netboot-vendor.XXXXXX)
trap 'rm -rf "$work"' EXIT
for crate in node/vendor/*/; do
    name=$(basename "$crate")
    case $name in
    noq-proto) filter=congestion::bbr3 ;;
    *) filter=netboot_patch ;;
    esac
    cp -r "$crate" "$work/$name"
    cp Cargo.lock "$work/$name/"
    out=$(cd "$work/$name" && cargo test --lib --target-dir "$root/target/vendor-patches" "$filter" 2>&1) || {
        echo "$out" >&2
        echo "vendor-patches: the tests of the patch to $name failed" >&2
        exit 1
    }
    echo "$out" | grep -E '^test |^test result'
    if ! echo "$out" | grep -qE '^test .*netboot_patch_.* \.\.\. ok$'; then
        echo "vendor-patches: $name has no netboot_patch_* test (node/vendor/README.md)" >&2
        exit 1
    fi
done
