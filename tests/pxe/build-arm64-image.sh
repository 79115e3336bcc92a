#!/usr/bin/env bash
# build-arm64-image.sh — build the arm64 end-to-end test boot image (cached), from Debian's
# own arm64 network installer: the Microsoft-signed shim, the Debian-signed GRUB and kernel,
# and the installer's initramfs (arm64 userspace: busybox, kmod, the virtio-net module), with
# the test's /init laid over it.
#
# Usage: tests/pxe/build-arm64-image.sh OUTDIR
#
# Outputs (in OUTDIR):
#   bootnetaa64.efi  shim (Microsoft-signed), from debian-installer-12-netboot-arm64
#   grubaa64.efi     GRUB (Debian-signed, network build), fetched by shim by this bare name
#   linux            the Debian-signed arm64 kernel
#   initrd.gz        the installer's initrd.gz with a second gzipped cpio appended: the kernel
#                    unpacks both, later files win, so /init is the test's (tests/pxe/guest/init:
#                    markers on /dev/ttyAMA0, modprobe virtio_pci virtio_net, udhcpc, fetch
#                    and check netboot_check=<URL>, poweroff)
#   check.bin        the same 256 KiB as the x86 image (image-lib.sh)
#   check.sha256     its sha256 (also baked into the overlay)
#   version.txt      which installer package the image was built from
#   .stamp           hash of all inputs; if it matches, the script does nothing
#
# Environment:
#   NETBOOT_TEST_CACHE     cache dir for the .deb (default /var/cache/netboot-tests)
#   NETBOOT_TEST_ARM64_DEB use this debian-installer-12-netboot-arm64 .deb instead of apt-get
#
# Exit codes: 0 ok (built or already up to date), 1 error, 2 usage / missing prerequisite.
# Concurrent runs on the same OUTDIR are serialised with flock(1).
set -euo pipefail

# shellcheck source=image-lib.sh
source "$(dirname "$0")/image-lib.sh"

[[ $# -eq 1 && $1 != -h && $1 != --help ]] || usage
OUTDIR=$1
image_need_tools

PKG=debian-installer-12-netboot-arm64
CACHE=${NETBOOT_TEST_CACHE:-/var/cache/netboot-tests}
# The installer's arm64 kernel has these as modules (virtio-net-pci on QEMU's virt machine).
MODULES="virtio_pci virtio_net"

mkdir -p "$OUTDIR" "$CACHE/debs"
OUTDIR=$(cd "$OUTDIR" && pwd)
exec 9>"$OUTDIR/.lock"
flock 9

if [[ -n ${NETBOOT_TEST_ARM64_DEB:-} ]]; then
    [[ -f $NETBOOT_TEST_ARM64_DEB ]] || die "NETBOOT_TEST_ARM64_DEB=$NETBOOT_TEST_ARM64_DEB does not exist"
    VER=$(dpkg-deb -f "$NETBOOT_TEST_ARM64_DEB" Version)
else
    VER=$(apt-cache policy "$PKG" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
    [[ -n $VER && $VER != "(none)" ]] || die "apt-cache knows no candidate for $PKG (run apt-get update?)"
fi

STAMP=$({
    sha256sum "$0" | cut -d' ' -f1
    echo "$PKG=$VER modules=$MODULES"
    image_inputs_hash
} | sha256sum | cut -d' ' -f1)
OUTPUTS=(bootnetaa64.efi grubaa64.efi linux initrd.gz check.bin check.sha256 version.txt)
up_to_date() {
    local f
    [[ -f $OUTDIR/.stamp && $(cat "$OUTDIR/.stamp") == "$STAMP" ]] || return 1
    for f in "${OUTPUTS[@]}"; do [[ -s $OUTDIR/$f ]] || return 1; done
}
if up_to_date; then
    log "up to date: $OUTDIR ($PKG $VER)"
    exit 0
fi

DEB=${NETBOOT_TEST_ARM64_DEB:-}
[[ -n $DEB ]] || DEB=$(image_apt_download "$CACHE/debs" "$PKG" "$VER" "about 130 MB") || exit 1

WORK=$(mktemp -d "$OUTDIR/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "extracting $(basename "$DEB")"
dpkg-deb -x "$DEB" "$WORK/deb"
DI=$(find "$WORK/deb" -type d -path '*/debian-installer/arm64' | head -n1)
[[ -n $DI ]] || die "no debian-installer/arm64 directory in $DEB"
for f in bootnetaa64.efi grubaa64.efi linux initrd.gz; do
    [[ -s $DI/$f ]] || die "$DEB has no debian-installer/arm64/$f"
    cp "$DI/$f" "$WORK/$f.new"
done

CHECK_SHA=$(image_check_bin "$WORK/check.bin")
image_guest_files "$WORK/overlay" ttyAMA0 "$CHECK_SHA" $MODULES
image_pack "$WORK/overlay" "$WORK/overlay.gz"
cat "$WORK/initrd.gz.new" "$WORK/overlay.gz" >"$WORK/initrd.gz"
for f in bootnetaa64.efi grubaa64.efi linux; do mv "$WORK/$f.new" "$WORK/$f"; done
echo "$CHECK_SHA  check.bin" >"$WORK/check.sha256"
echo "$PKG $VER" >"$WORK/version.txt"

rm -f "$OUTDIR/.stamp"
for f in "${OUTPUTS[@]}"; do mv -f "$WORK/$f" "$OUTDIR/$f"; done
echo "$STAMP" >"$OUTDIR/.stamp"
log "built $OUTDIR from $PKG $VER: initrd.gz $(stat -c %s "$OUTDIR/initrd.gz") B (installer + test /init), check.bin sha256 $CHECK_SHA"
