#!/usr/bin/env bash
# Boot time of the Secure Boot path with a real client: QEMU (TCG, 1 vCPU) from start to the
# initramfs's PASS marker, the same image (Debian's signed kernel + the test initramfs, no
# `quiet`) in three cases, all in proxy-DHCP mode beside the lab's site DHCP server:
#   sb        netboot, Secure Boot-enforcing OVMF (uefi-sb): shim -> signed GRUB (d-i build)
#             -> generated grub.cfg -> kernel + initrd over TFTP from the node
#             (tests/pxe/netboot-server.sh sb-proxy)
#   ipxe      netboot, OVMF without Secure Boot (uefi-pxe): snponly.efi -> iPXE -> kernel +
#             initrd over HTTP (tests/pxe/netboot-server.sh proxy)
#   dnsmasq   the same shim + GRUB chain served by dnsmasq (proxy-DHCP + TFTP) with a static
#             grub.cfg, Secure Boot enforced (tests/bench/peer-dnsmasq-nginx.sh grub)
# GRUB 2.06 finds its TFTP server only as next-server of the site's DHCP ACK, so the site
# DHCP server names the server namespace's address as next-server in every case.
#
#   bash tests/bench/boot-secureboot.sh [RUNS]    (as root; default 3 runs, median reported)
#
# One lab (tests/pxe/lab.sh) for the whole run; every boot gets a freshly started server; the
# cases alternate within a run so that host load falls on all of them alike. Writes the
# results into docs/benchmarks.md between the boot-secureboot markers and prints them.
# Everything it starts is stopped, and the lab removed, on any exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
RUNS=${1:-3}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "usage: boot-secureboot.sh [RUNS]" >&2; exit 2; }
CASES=(sb ipxe dnsmasq)
TIMEOUT=300
BENCH=boot-secureboot.sh
# shellcheck source=lib.sh
source tests/bench/lib.sh
bench_need_root "it creates network namespaces"
START=$(date +%s)

bench_install --stop nginx qemu-system-x86 ovmf ipxe busybox-static cpio iproute2 \
    dnsmasq-base python3 nginx shim-signed grub-efi-amd64-signed sbsigntool pxelinux \
    syslinux-common
bench_build
IMAGE="${NETBOOT_TEST_CACHE:-/var/cache/netboot-tests}/image"
tests/pxe/build-boot-image.sh "$IMAGE" >&2

# shellcheck source-path=SCRIPTDIR source=../pxe/lab.sh
source tests/pxe/lab.sh
export LAB_NO_TRAP=1
cleanup() {
    [[ -z ${SERVER_PID:-} ]] || lab_stop "$SERVER_PID"
    lab_down
}
trap cleanup EXIT
trap 'cleanup; trap - EXIT; exit 130' INT
trap 'cleanup; trap - EXIT; exit 143' TERM
lab_up site
LAB_SITE_NEXT_SERVER=$LAB_SERVER_IP lab_site_dhcp
lab_ra_responder
cp target/release/netboot "$LAB_DIR/netboot"
# The kernel logs its Secure Boot state only without `quiet`: the same arguments everywhere.
export NETBOOT_BIN="$LAB_DIR/netboot" NETBOOT_E2E_IMAGE=$IMAGE
export NETBOOT_E2E_KERNEL_ARGS="console=ttyS0 panic=-1"

server() {
    local c=$1 d=$2 a=("$LAB_IFACE_SERVER" "$LAB_SERVER_IP" "$LAB_DHCP_START" "$LAB_DHCP_END" "$LAB_NETMASK" "$d")
    mkdir -p "$d"
    case $c in
    sb) lab_bg_in_server --log "$d/server.log" "$REPO/tests/pxe/netboot-server.sh" sb-proxy "${a[@]}" ;;
    ipxe) lab_bg_in_server --log "$d/server.log" "$REPO/tests/pxe/netboot-server.sh" proxy "${a[@]}" ;;
    dnsmasq) lab_bg_in_server --log "$d/server.log" env PEER_DIR="$d/peer" "$REPO/tests/bench/peer-dnsmasq-nginx.sh" grub ;;
    esac
    SERVER_PID=$LAB_LAST_PID
    bench_wait_server "$SERVER_PID" "$d/server.log"
}

mode_of() { [[ $1 == ipxe ]] && echo uefi-pxe || echo uefi-sb; }
declare -A R
add() { R[$1]="${R[$1]:-}${R[$1]:+ }$2"; }
med() { tr ' ' '\n' <<<"${R[$1]:--}" | bench_median —; }

LOADS=() UPTIME0=$(uptime)
for run in $(seq "$RUNS"); do
    for c in "${CASES[@]}"; do
        d="$LAB_DIR/b-$run-$c"
        server "$c" "$d" || { echo "boot-secureboot.sh: $c server did not start" >&2; exit 1; }
        LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
        qemu_boot "$(mode_of "$c")" "$d/serial.log" "$TIMEOUT" >"$d/qemu_boot.out" 2>"$d/qemu_boot.err" || true
        line=$(grep '^qemu_boot:' "$d/qemu_boot.out" || true)
        lab_stop "$SERVER_PID"
        SERVER_PID=""
        echo "  run $run $c: ${line%% log=*}" >&2
        res=$(sed -n 's/.* result=\([A-Z]*\).*/\1/p' <<<"$line")
        if [[ $res != PASS ]]; then add "$c,fail" 1; cat "$d/qemu_boot.err" >&2; continue; fi
        if [[ $c != ipxe ]] && ! grep -aq 'secureboot: Secure boot enabled' "$d/serial.log"; then
            echo "boot-secureboot.sh: $c booted without Secure Boot enforced" >&2
            exit 1
        fi
        add "$c,elapsed" "$(sed -n 's/.* elapsed=\([0-9.]*\).*/\1/p' <<<"$line")"
        add "$c,initramfs" "$(sed -n 's/.* initramfs=\([0-9.-]*\).*/\1/p' <<<"$line")"
    done
done
RUNTIME=$(($(date +%s) - START))
UPTIME1=$(uptime)

fails() { local n; n=$(tr ' ' '\n' <<<"${R[$1,fail]:-}" | grep -c . || true); [[ $n -eq 0 ]] || echo " ($n of $RUNS failed)"; }
loadstat=$(bench_loadstat "${LOADS[@]}")
se=$(med "sb,elapsed") si=$(med "sb,initramfs")
{
    echo "<!-- boot-secureboot:begin -->"
    echo "### Secure Boot path: QEMU (TCG) UEFI PXE boot to the initramfs's PASS marker"
    echo
    echo "Command: \`bash tests/bench/boot-secureboot.sh $RUNS\` — $(date -u +%Y-%m-%d), netboot $REV, $(nproc) cores, $(uname -r), median of $RUNS runs per case, $((RUNTIME / 60)) min."
    echo "Host load (1-min load average) at each QEMU start, min / median / max: $loadstat; \`uptime\` before: \`${UPTIME0#*load average: }\`, after: \`${UPTIME1#*load average: }\`."
    echo "QEMU $(bench_ver qemu-system-x86) TCG, q35, 1 vCPU, 512 MiB, virtio-net, OVMF $(bench_ver ovmf) own PXE client (secboot code + MS vars for sb and dnsmasq). shim-signed $(bench_ver shim-signed), grub-efi-amd64-signed $(bench_ver grub-efi-amd64-signed) (d-i network build), dnsmasq $(bench_ver dnsmasq-base). Kernel $(cut -d' ' -f1-2 "$IMAGE/kernel.txt" 2>/dev/null) (Debian-signed), vmlinuz $(stat -c %s "$IMAGE/vmlinuz") B, initrd.img $(stat -c %s "$IMAGE/initrd.img") B; kernel arguments without \`quiet\` in all cases."
    echo
    echo "Seconds from QEMU start; ratio > 1 = the Secure Boot path is slower."
    echo
    echo "| case | path | PASS s (runs) | initramfs s | sb ÷ case (PASS) | sb ÷ case (initramfs) |"
    echo "|---|---|---|---|---|---|"
    for c in "${CASES[@]}"; do
        e=$(med "$c,elapsed") i=$(med "$c,initramfs")
        case $c in
        sb) what="netboot: shim → signed GRUB → kernel + initrd over TFTP, Secure Boot on" ;;
        ipxe) what="netboot: snponly.efi → iPXE → kernel + initrd over HTTP, Secure Boot off" ;;
        dnsmasq) what="dnsmasq proxy + TFTP, same shim + GRUB chain, static grub.cfg, Secure Boot on" ;;
        esac
        if [[ $c == sb ]]; then re="" ri=""; else re=$(bench_ratio "$se" "$e") ri=$(bench_ratio "$si" "$i"); fi
        echo "| $c | $what | $e (${R[$c,elapsed]:-})$(fails "$c") | $i | $re | $ri |"
    done
    echo "<!-- boot-secureboot:end -->"
} >"$LAB_DIR/section.md"
cat "$LAB_DIR/section.md"
bench_put_section boot-secureboot "$LAB_DIR/section.md"
