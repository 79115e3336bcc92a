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
# What the initramfs /init does (markers go to /dev/ttyS0 and the console):
#   "NETBOOT-E2E: initramfs up", insmod the NIC drivers, udhcpc on eth0
#   (or netboot_iface=IFACE), prints "NETBOOT-E2E: ip A.B.C.D/NN ..." and the URL,
#   fetches the kernel command line parameter netboot_check=<URL> with busybox
#   wget (inside `timeout`), compares its sha256 with the baked one (or with
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

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "build-boot-image: ERROR: $*" >&2; exit 1; }
need_pkg() { # need_pkg CMD DEBIAN_PACKAGE
    command -v "$1" >/dev/null 2>&1 || {
        echo "build-boot-image: ERROR: '$1' not found — install the Debian package: apt-get install $2" >&2
        exit 2
    }
}
log() { echo "build-boot-image: $*" >&2; }

[[ $# -eq 1 && $1 != -h && $1 != --help ]] || usage
OUTDIR=$1

need_pkg apt-get apt
need_pkg apt-cache apt
need_pkg dpkg-deb dpkg
need_pkg cpio cpio
need_pkg gzip gzip
need_pkg flock util-linux
need_pkg sha256sum coreutils
need_pkg python3 python3-minimal
if [[ ! -x /bin/busybox || $(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null) != "install ok installed" ]]; then
    echo "build-boot-image: ERROR: static busybox missing — install the Debian package: apt-get install busybox-static" >&2
    exit 2
fi
BUSYBOX=/bin/busybox

CACHE=${NETBOOT_TEST_CACHE:-/var/cache/netboot-tests}
MODULES=${NETBOOT_TEST_MODULES:-"failover net_failover virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_net e1000 e1000e mii 8139cp 8139too"}
CHECK_SIZE=262144
CHECK_SEED=netboot-e2e-check-v1

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
    echo "check=$CHECK_SEED/$CHECK_SIZE"
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
    DEB="$CACHE/debs/${KPKG}_${KVER//:/%3a}_amd64.deb"
    if [[ ! -s $DEB ]]; then
        log "downloading $KPKG $KVER into $CACHE/debs (about 70 MB)"
        dl=$(mktemp -d "$CACHE/debs/.dl.XXXXXX")
        chmod 755 "$dl"
        chown _apt "$dl" 2>/dev/null || true # lets apt download sandboxed
        if ! (cd "$dl" && apt-get download -q "$KPKG=$KVER" >&2); then
            rm -rf "$dl"
            die "apt-get download $KPKG=$KVER failed"
        fi
        f=$(find "$dl" -maxdepth 1 -name '*.deb' | head -n1)
        [[ -n $f ]] || { rm -rf "$dl"; die "apt-get download produced no .deb"; }
        mv "$f" "$DEB"
        rm -rf "$dl"
    fi
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
printf '%s\n' "${ORDER[@]}" >"$R/etc/modules"
log "modules (load order): ${ORDER[*]}"

# ---- check.bin: deterministic pseudo-random data -----------------------------------
python3 - "$WORK/check.bin" "$CHECK_SEED" "$CHECK_SIZE" <<'EOF'
import hashlib, sys
out, seed, size = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
buf = bytearray()
i = 0
while len(buf) < size:
    buf += hashlib.sha256(seed + i.to_bytes(8, "big")).digest()
    i += 1
with open(out, "wb") as f:
    f.write(bytes(buf[:size]))
EOF
CHECK_SHA=$(sha256sum "$WORK/check.bin" | cut -d' ' -f1)
echo "$CHECK_SHA" >"$R/etc/check.sha256"

# ---- busybox + applet links --------------------------------------------------------
cp "$BUSYBOX" "$R/bin/busybox"
while IFS= read -r applet; do
    [[ -z $applet || $applet == bin/busybox ]] && continue
    [[ -e $R/$applet ]] || ln -s /bin/busybox "$R/$applet"
done < <("$BUSYBOX" --list-full)
[[ -e $R/bin/sh ]] || ln -s /bin/busybox "$R/bin/sh"

cat >"$R/etc/udhcpc.script" <<'EOF'
#!/bin/sh
# udhcpc event script: configure the lease on $interface and record it in /tmp/lease.
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound | renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    for r in $router; do
        ip route add default via "$r" dev "$interface" && break
    done
    {
        echo "ip='$ip'"
        echo "mask='${mask:-24}'"
        echo "router='$router'"
        echo "serverid='$serverid'"
    } >/tmp/lease
    ;;
esac
exit 0
EOF
chmod 755 "$R/etc/udhcpc.script"

cat >"$R/init" <<'EOF'
#!/bin/sh
# netboot PXE end-to-end test init (generated by tests/pxe/build-boot-image.sh)
PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mdev -s
mount -t tmpfs tmpfs /tmp
# keep kernel messages from splitting our marker lines
echo 1 >/proc/sys/kernel/printk

say() {
    line="NETBOOT-E2E: $*"
    echo "$line" >/dev/ttyS0 2>/dev/null
    case " $(cat /sys/class/tty/console/active 2>/dev/null) " in
    *" ttyS0 "*) ;;
    *) echo "$line" >/dev/console 2>/dev/null ;;
    esac
}
halt_now() {
    sync
    poweroff -f
    sleep 5
    echo o >/proc/sysrq-trigger
    while :; do sleep 60; done
}
fail() {
    say "FAIL $*"
    halt_now
}

say "initramfs up (kernel $(uname -r))"

url=
want=$(cat /etc/check.sha256)
iface=eth0
for w in $(cat /proc/cmdline); do
    case "$w" in
    netboot_check=*) url=${w#netboot_check=} ;;
    netboot_check_sha256=*) want=${w#netboot_check_sha256=} ;;
    netboot_iface=*) iface=${w#netboot_iface=} ;;
    esac
done

for m in $(cat /etc/modules); do
    insmod "/lib/modules/$m.ko" 2>/dev/null || say "warning: insmod $m failed"
done

n=0
while [ ! -e "/sys/class/net/$iface" ]; do
    n=$((n + 1))
    [ $n -gt 100 ] && fail "no network interface $iface (have: $(ls /sys/class/net | tr '\n' ' '))"
    sleep 0.1
done
ip link set lo up
ip link set "$iface" up
say "$iface mac $(cat "/sys/class/net/$iface/address"), starting udhcpc"

udhcpc -f -q -n -i "$iface" -t 10 -T 2 -s /etc/udhcpc.script >/tmp/udhcpc.log 2>&1 ||
    fail "no DHCP lease on $iface: $(tail -n 3 /tmp/udhcpc.log | tr '\n' ' ')"
[ -f /tmp/lease ] || fail "udhcpc returned without a lease"
. /tmp/lease
say "ip $ip/$mask on $iface (dhcp server $serverid, router ${router:-none})"

[ -n "$url" ] || fail "no netboot_check=<URL> on the kernel command line: $(cat /proc/cmdline)"
say "fetching $url"
rc=0
timeout 60 wget -q -O /tmp/check.bin "$url" >/tmp/wget.log 2>&1 || rc=$?
[ $rc -eq 0 ] || fail "wget $url failed (exit $rc): $(tail -n 3 /tmp/wget.log | tr '\n' ' ')"
got=$(sha256sum /tmp/check.bin | cut -d' ' -f1)
size=$(wc -c </tmp/check.bin)
[ "$got" = "$want" ] || fail "check.bin sha256 mismatch: got $got ($size bytes), want $want"
say "PASS check.bin sha256 ok ($size bytes from $url)"
halt_now
EOF
chmod 755 "$R/init"

# ---- pack (reproducible: fixed owners and mtimes, sorted, gzip -n) -----------------
find "$R" -exec touch -h -d @0 {} +
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort |
    cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9 -n >"$WORK/initrd.img"

cp "$vmlinuz" "$WORK/vmlinuz"
echo "$CHECK_SHA  check.bin" >"$WORK/check.sha256"
echo "$KPKG $KVER $KREL" >"$WORK/kernel.txt"
rm -f "$OUTDIR/.stamp"
for f in vmlinuz initrd.img check.bin check.sha256 kernel.txt; do
    mv -f "$WORK/$f" "$OUTDIR/$f"
done
echo "$STAMP" >"$OUTDIR/.stamp"
log "built $OUTDIR: vmlinuz ($(stat -c %s "$OUTDIR/vmlinuz") B), initrd.img ($(stat -c %s "$OUTDIR/initrd.img") B), check.bin sha256 $CHECK_SHA"
