#!/usr/bin/env bash
# Runs every netboot test on a fresh Debian machine (as root): installs what the tests need,
# builds the workspace once, then runs all tests against that build.
#
#   bash tests/run-all.sh
#
# Tests that need root, network namespaces or QEMU are part of "all": when a prerequisite is
# missing they fail with a message naming it, they are never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "run-all.sh: run as root (it installs packages and creates network namespaces)" >&2
    exit 1
fi
command -v cargo >/dev/null || { echo "run-all.sh: cargo not found: install Rust (rustup) first" >&2; exit 1; }

# What the tests use: QEMU with iPXE ROMs and OVMF for real PXE clients, iPXE/PXELINUX
# binaries to serve, busybox for the test initramfs, dnsmasq as a site DHCP server, TFTP
# clients, iproute2 for namespaces.
PACKAGES=(
    qemu-system-x86 ipxe-qemu ovmf ipxe pxelinux syslinux-common busybox-static cpio
    iproute2 dnsmasq-base curl atftp tftp-hpa iptables kmod xz-utils python3 util-linux
)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Build once (binaries and test executables), then run the tests on that build.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked --no-fail-fast
