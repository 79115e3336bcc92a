#!/usr/bin/env bash
# build-boot-image.sh — build the PXE end-to-end test boot image (cached).
#
# Usage: tests/pxe/build-boot-image.sh OUTDIR
#
# Outputs (in OUTDIR):
#   vmlinuz       Debian linux-image-*-amd64 kernel
#   initrd.img    busybox-static initramfs (cpio newc, gzip) with NIC drivers
#                 (virtio-net, e1000, e1000e, rtl8139) and a test /init
#   check.bin     256 KiB of deterministic pseudo-random data
#   check.sha256  sha256 of check.bin (the same value is baked into initrd.img)
#   kernel.txt    which kernel package/version the image was built from
#   .stamp        hash of all inputs; if it matches, the script does nothing
#
# What the initramfs /init (tests/pxe/guest/init) does (markers go to /dev/ttyS0 and the console):
#   "NETBOOT-E2E: initramfs up" and what the kernel logged about Secure Boot, insmod
#   the NIC drivers, udhcpc on eth0
#   (or netboot_iface=IFACE), prints "NETBOOT-E2E: ip A.B.C.D/NN ..." and the URL,
#   fetches the kernel command line parameter netboot_check=<URL> with busybox
#   wget (bounded to 60 s), compares its sha256 with the baked one (or with
#   netboot_check_sha256=<hex> if given on the command line), prints
#   "NETBOOT-E2E: PASS check.bin sha256 ok" or "NETBOOT-E2E: FAIL <reason>",
#   then `poweroff -f`.
#
# Environment:
#   NETBOOT_TEST_CACHE       cache dir for the kernel .deb (default /var/cache/netboot-tests)
#   NETBOOT_TEST_KERNEL_PKG  kernel package (default: what linux-image-amd64 depends on)
#   NETBOOT_TEST_KERNEL_DEB  use this .deb file instead of apt-get download
#   NETBOOT_TEST_MODULES     space-separated module names (dependencies are added)
#
# Exit codes: 0 ok (built or already up to date), 1 error, 2 usage / missing prerequisite.
# Concurrent runs on the same OUTDIR are serialised with flock(1).
set -euo pipefail

# shellcheck source=image-lib.sh
source "$(dirname "$0")/image-lib.sh"

[[ $# -eq 1 && $1 != -h && $1 != --help ]] || usage
OUTDIR=$1

image_need_tools
if [[ ! -x /bin/busybox || $(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null) != "install ok installed" ]]; then
    echo "build-boot-image: ERROR: static busybox missing — install the Debian package: apt-get install busybox-static" >&2
    exit 2
fi
BUSYBOX=/bin/busybox

CACHE=${NETBOOT_TEST_CACHE:-/var/cache/netboot-tests}
MODULES=${NETBOOT_TEST_MODULES:-"failover net_failover virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_net e1000 e1000e mii 8139cp 8139too"}

mkdir -p "$OUTDIR" "$CACHE/debs"
OUTDIR=$(cd "$OUTDIR" && pwd)

exec 9>"$OUTDIR/.lock"
flock 9

# ---- resolve the kernel package -------------------------------------------------
if [[ -n ${NETBOOT_TEST_KERNEL_DEB:-} ]]; then
    [[ -f $NETBOOT_TEST_KERNEL_DEB ]] || die "NETBOOT_TEST_KERNEL_DEB=$NETBOOT_TEST_KERNEL_DEB does not exist"
    KPKG=$(dpkg-deb -f "$NETBOOT_TEST_KERNEL_DEB" Package)
    KVER=$(dpkg-deb -f "$NETBOOT_TEST_KERNEL_DEB" Version)
else
    KPKG=${NETBOOT_TEST_KERNEL_PKG:-}
    if [[ -z $KPKG ]]; then
        KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null |
            sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)
        [[ -n $KPKG ]] || die "cannot resolve linux-image-amd64 with apt-cache (run apt-get update, or set NETBOOT_TEST_KERNEL_PKG / NETBOOT_TEST_KERNEL_DEB)"
    fi
    KVER=$(apt-cache policy "$KPKG" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
    [[ -n $KVER && $KVER != "(none)" ]] || die "apt-cache knows no candidate for $KPKG (run apt-get update?)"
fi

# ---- cache check ------------------------------------------------------------------
STAMP=$({
    sha256sum "$0" | cut -d' ' -f1
    echo "kernel=$KPKG=$KVER"
    sha256sum "$BUSYBOX" | cut -d' ' -f1
    echo "modules=$MODULES"
    image_inputs_hash
} | sha256sum | cut -d' ' -f1)

if [[ -f $OUTDIR/.stamp && $(cat "$OUTDIR/.stamp") == "$STAMP" ]] &&
    [[ -s $OUTDIR/vmlinuz && -s $OUTDIR/initrd.img && -s $OUTDIR/check.bin ]]; then
    log "up to date: $OUTDIR ($KPKG $KVER)"
    exit 0
fi

# ---- fetch the .deb (cached) -------------------------------------------------------
if [[ -n ${NETBOOT_TEST_KERNEL_DEB:-} ]]; then
    DEB=$NETBOOT_TEST_KERNEL_DEB
else
    DEB=$(image_apt_download "$CACHE/debs" "$KPKG" "$KVER" "about 70 MB") || exit 1
fi

WORK=$(mktemp -d "$OUTDIR/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

log "extracting $(basename "$DEB")"
dpkg-deb -x "$DEB" "$WORK/deb"
vmlinuz=$(find "$WORK/deb/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n1)
[[ -n $vmlinuz ]] || die "no /boot/vmlinuz-* in $DEB"
KREL=${vmlinuz##*/vmlinuz-}
MODDIR="$WORK/deb/lib/modules/$KREL"
[[ -d $MODDIR ]] || die "no /lib/modules/$KREL in $DEB"

# ---- kernel modules: locate, decompress, resolve dependencies ----------------------
R="$WORK/root"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,lib/modules}

declare -A MODFILE=() SEEN=()
while IFS= read -r -d '' f; do
    n=${f##*/}
    n=${n%%.ko*}
    MODFILE[$n]=$f
done < <(find "$MODDIR/kernel" -name '*.ko*' -print0)

ORDER=()
add_module() { # add_module NAME — depth-first, dependencies first
    local name=$1 src dst deps d
    name=${name//-/_}
    [[ -n ${SEEN[$name]:-} ]] && return 0
    SEEN[$name]=1
    src=${MODFILE[$name]:-}
    if [[ -z $src ]]; then
        # names in modules.builtin use the path; '-' and '_' are equivalent
        if grep -Eq "/(${name}|${name//_/-})\.ko$" "$MODDIR/modules.builtin" 2>/dev/null; then
            log "module $name is built into $KREL"
            return 0
        fi
        die "module $name not found in $KPKG"
    fi
    dst="$R/lib/modules/$name.ko"
    case $src in
    *.ko) cp "$src" "$dst" ;;
    *.ko.xz) need_pkg xz xz-utils; xz -dc "$src" >"$dst" ;;
    *.ko.zst) need_pkg zstd zstd; zstd -qdc "$src" >"$dst" ;;
    *.ko.gz) gzip -dc "$src" >"$dst" ;;
    *) die "unknown module compression: $src" ;;
    esac
    deps=$(tr '\0' '\n' <"$dst" | sed -n 's/^depends=//p' | head -n1)
    for d in ${deps//,/ }; do add_module "$d"; done
    ORDER+=("$name")
}
for m in $MODULES; do add_module "$m"; done
log "modules (load order): ${ORDER[*]}"

# ---- check.bin: deterministic pseudo-random data -----------------------------------
CHECK_SHA=$(image_check_bin "$WORK/check.bin")

# ---- busybox + applet links --------------------------------------------------------
cp "$BUSYBOX" "$R/bin/busybox"
while IFS= read -r applet; do
    [[ -z $applet || $applet == bin/busybox ]] && continue
    [[ -e $R/$applet ]] || ln -s /bin/busybox "$R/$applet"
done < <("$BUSYBOX" --list-full)
[[ -e $R/bin/sh ]] || ln -s /bin/busybox "$R/bin/sh"

# ---- the test: /init (tests/pxe/guest/init) and what it reads -------------------------
image_guest_files "$R" ttyS0 "$CHECK_SHA" "${ORDER[@]}"

# ---- pack ----------------------------------------------------------------------------
image_pack "$R" "$WORK/initrd.img"

cp "$vmlinuz" "$WORK/vmlinuz"
echo "$CHECK_SHA  check.bin" >"$WORK/check.sha256"
echo "$KPKG $KVER $KREL" >"$WORK/kernel.txt"
rm -f "$OUTDIR/.stamp"
for f in vmlinuz initrd.img check.bin check.sha256 kernel.txt; do
    mv -f "$WORK/$f" "$OUTDIR/$f"
done
echo "$STAMP" >"$OUTDIR/.stamp"
log "built $OUTDIR: vmlinuz ($(stat -c %s "$OUTDIR/vmlinuz") B), initrd.img ($(stat -c %s "$OUTDIR/initrd.img") B), check.bin sha256 $CHECK_SHA"
