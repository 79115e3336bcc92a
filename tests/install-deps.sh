#!/usr/bin/env bash
# Installs the Debian packages netboot's tests and demo use (as root). Idempotent: installs
# only what is missing.
#   QEMU with iPXE ROMs and OVMF for real PXE clients, qemu-system-arm + AAVMF
#   (qemu-efi-aarch64) for the arm64 client; iPXE/PXELINUX binaries to serve;
#   busybox/cpio for the test initramfs; dnsmasq as a site's own DHCP server; TFTP/HTTP
#   clients; iproute2 for network namespaces; python3 for the lab's RA responder; iptables,
#   iputils-ping and procps (sysctl) for the WAN lab (tests/wan); Debian's signed shim and
#   network GRUB plus sbsigntool (sbattach) for the Secure Boot tests; g++ for libFuzzer
#   (tests/fuzz); chromium (headless) for the status page test (tests/tests/status.rs);
#   systemd (systemd-analyze) and adduser for the package tests (tests/tests/package.rs),
#   which also need cargo-deb from crates.io, pinned below; prometheus for promtool, which
#   checks /metrics.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (it installs packages; tests create network namespaces)" >&2
    exit 1
fi
command -v cargo >/dev/null || { echo "install-deps.sh: cargo not found: install Rust (rustup) first" >&2; exit 1; }
PACKAGES=(
    qemu-system-x86 qemu-system-arm qemu-efi-aarch64 ipxe-qemu seabios ovmf ipxe pxelinux syslinux-common busybox-static cpio
    iproute2 dnsmasq-base curl atftp tftp-hpa iptables kmod xz-utils python3 util-linux
    iputils-ping procps shim-signed grub-efi-amd64-signed sbsigntool g++ chromium systemd adduser prometheus
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
# cargo-deb builds the Debian package (tests/tests/package.rs); pinned so CI builds the same
# package every time (a release build of it takes a few minutes, once).
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION\|$CARGO_DEB_VERSION"; then
    echo "installing cargo-deb $CARGO_DEB_VERSION"
    cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi
