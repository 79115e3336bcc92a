#!/usr/bin/env bash
# Boot time with a real client: QEMU (TCG) from start to the initramfs's PASS marker, for
#   netboot   `netboot node` in proxy-DHCP mode (tests/pxe/netboot-server.sh proxy)
#   peer      the same path with dnsmasq (proxy-DHCP + TFTP) and nginx (HTTP, sendfile)
#             (tests/bench/peer-dnsmasq-nginx.sh ipxe)
#   pxelinux  the classic path: dnsmasq proxy-DHCP + TFTP, PXELINUX (BIOS) / syslinux.efi
#             (UEFI) loading vmlinuz + initrd.img over TFTP; nginx serves only check.bin
#             (tests/bench/peer-dnsmasq-nginx.sh pxelinux)
# each booted in BIOS (SeaBIOS + the NIC's iPXE ROM) and UEFI (OVMF's own PXE client →
# TFTP first stage) mode, beside the lab's site DHCP server (addresses only).
#
#   bash tests/bench/boot.sh [RUNS]        (as root; default 3 runs, median reported)
#
# One lab (tests/pxe/lab.sh: network namespaces; nothing in the root namespace) for the whole
# run; every boot gets a freshly started server, so each log holds exactly one boot. Within a
# run the cases alternate (netboot, peer, pxelinux, per mode), so the host's load falls on all
# of them alike. The phase breakdown comes from the servers' own log timestamps (the node's
# log, dnsmasq's log stamped per line, nginx's access log) placed on the QEMU timeline.
# Writes the results into docs/benchmarks.md between the boot markers and prints them.
# Everything it starts is stopped, and the lab removed, on any exit. BOOT_KEEP=1 keeps the
# lab directory (logs) for inspection.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
RUNS=${1:-3}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "usage: boot.sh [RUNS]" >&2; exit 2; }
MODES=(bios uefi-pxe)
CASES=(netboot peer pxelinux)
TIMEOUT=300
BENCH=boot.sh
# shellcheck source=lib.sh
source tests/bench/lib.sh
bench_need_root "it creates network namespaces"
START=$(date +%s)

# The client, the lab and the peers, from Debian's packages; the system nginx the package
# starts is stopped, the benchmark runs its own nginx in the lab.
bench_install --stop nginx qemu-system-x86 ipxe-qemu seabios ovmf ipxe busybox-static cpio \
    iproute2 dnsmasq-base python3 nginx pxelinux syslinux-common syslinux-efi
bench_build
IMAGE="${NETBOOT_TEST_CACHE:-/var/cache/netboot-tests}/image"
tests/pxe/build-boot-image.sh "$IMAGE" >&2

# shellcheck source-path=SCRIPTDIR source=../pxe/lab.sh
source tests/pxe/lab.sh
# shellcheck disable=SC2031 # lab.sh sets LAB_KEEP only in a subshell of lab_gc
export LAB_NO_TRAP=1 LAB_KEEP=${BOOT_KEEP:-0}
cleanup() {
    [[ -z ${TAIL_PID:-} ]] || kill "$TAIL_PID" 2>/dev/null || true
    [[ -z ${SERVER_PID:-} ]] || lab_stop "$SERVER_PID"
    lab_down
}
trap cleanup EXIT
trap 'cleanup; trap - EXIT; exit 130' INT
trap 'cleanup; trap - EXIT; exit 143' TERM
lab_up site
lab_site_dhcp
lab_ra_responder # no IPv6 router: iPXE does not wait for one (tests/pxe/README.md)
# A private copy of the binary: other builds in this tree cannot swap it mid-run.
cp target/release/netboot "$LAB_DIR/netboot"
export NETBOOT_BIN="$LAB_DIR/netboot" NETBOOT_E2E_IMAGE=$IMAGE
export NETBOOT_E2E_KERNEL_ARGS="console=ttyS0 quiet panic=-1"

# server CASE DIR: start CASE's server (its logs in DIR) and wait until it listens.
server() {
    local c=$1 d=$2
    mkdir -p "$d"
    case $c in
    netboot) lab_bg_in_server --log "$d/server.log" "$REPO/tests/pxe/netboot-server.sh" proxy \
        "$LAB_IFACE_SERVER" "$LAB_SERVER_IP" "$LAB_DHCP_START" "$LAB_DHCP_END" "$LAB_NETMASK" "$d" ;;
    peer) lab_bg_in_server --log "$d/server.log" env PEER_DIR="$d/peer" "$REPO/tests/bench/peer-dnsmasq-nginx.sh" ipxe ;;
    pxelinux) lab_bg_in_server --log "$d/server.log" env PEER_DIR="$d/peer" "$REPO/tests/bench/peer-dnsmasq-nginx.sh" pxelinux ;;
    esac
    SERVER_PID=$LAB_LAST_PID
    bench_wait_server "$SERVER_PID" "$d/server.log"
}

# stamp: prefix each line with the epoch time it arrived (the serial console and dnsmasq's log
# have no sub-second timestamps of their own).
stamp() { while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }

# Event times (epoch seconds, "-" if absent) from a server's logs.
iso() { [[ -n $1 ]] && date -d "$1" +%s.%N || echo -; }
nb_first() { iso "$(grep -m1 -E "$2" "$1" | cut -d' ' -f1)"; }
nb_last() { iso "$(grep -E "$2" "$1" | tail -n1 | cut -d' ' -f1)"; }
dm_first() { local t; t=$(grep -m1 -E "$2" "$1" | cut -d' ' -f1); echo "${t:--}"; }
dm_last() { local t; t=$(grep -E "$2" "$1" | tail -n1 | cut -d' ' -f1); echo "${t:--}"; }
# nginx: the time a request started = time it was done - its duration
ng_start() { local t; t=$(grep -m1 -E "$2" "$1" | awk '{ printf "%.3f", $1 - $2 }'); echo "${t:--}"; }

# events CASE DIR: prints "offer stage script kernel initrd loaded"
#   offer   first DHCP offer; stage  first stage (snponly.efi, pxelinux.0, syslinux.efi) sent
#   script  boot script / pxelinux.cfg/default fetched
#   kernel  vmlinuz requested; initrd  initrd.img requested. With TFTP (pxelinux) only
#   completions are logged: kernel = the config's completion, initrd = vmlinuz's completion.
#   loaded  initrd.img loaded: iPXE's "initrd.img... ok" on the serial console (netboot,
#           peer), dnsmasq's completion of initrd.img (pxelinux)
events() {
    local c=$1 d=$2 loaded
    loaded=$(grep -a -m1 'initrd\.img\.\.\. ok' "$d/serial.stamped" | cut -d' ' -f1)
    case $c in
    netboot)
        local l=$d/server.log
        echo "$(nb_first "$l" 'dhcp: .*OFFER') $(nb_last "$l" 'tftp transfer .*outcome=complete') \
$(nb_first "$l" 'GET /boot\.ipxe\?mac=') $(nb_first "$l" 'GET /r/[^ ]*/vmlinuz') $(nb_first "$l" 'GET /r/[^ ]*/initrd\.img') ${loaded:--}" ;;
    peer)
        local l=$d/peer/dnsmasq.log a=$d/peer/access.log
        echo "$(dm_first "$l" ' PXE\(') $(dm_last "$l" 'sent .*/(undionly\.kpxe|snponly\.efi) to') \
$(ng_start "$a" '"GET /boot\.ipxe') $(ng_start "$a" '"GET /vmlinuz') $(ng_start "$a" '"GET /initrd\.img') ${loaded:--}" ;;
    pxelinux)
        local l=$d/peer/dnsmasq.log cfg
        cfg=$(dm_first "$l" 'sent .*/pxelinux\.cfg/default to')
        echo "$(dm_first "$l" ' PXE\(') $(dm_last "$l" 'sent .*/(pxelinux\.0|syslinux\.efi) to') \
$cfg $cfg $(dm_first "$l" 'sent .*/vmlinuz to') $(dm_first "$l" 'sent .*/initrd\.img to')" ;;
    esac
}

median() { bench_median —; }
declare -A R # R[case,mode,metric] = space-separated values, one per boot
add() { R[$1]="${R[$1]:-}${R[$1]:+ }$2"; }
med() { tr ' ' '\n' <<<"${R[$1]:--}" | median; }

LOADS=() UPTIME0=$(uptime)
for run in $(seq "$RUNS"); do
    for mode in "${MODES[@]}"; do
        for c in "${CASES[@]}"; do
            d="$LAB_DIR/b-$run-$mode-$c"
            server "$c" "$d" || { echo "boot.sh: $c server did not start" >&2; exit 1; }
            LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
            : >"$d/serial.log"
            tail -F -n +1 "$d/serial.log" 2>/dev/null > >(stamp >"$d/serial.stamped") &
            TAIL_PID=$!
            t0=$(date +%s.%N)
            qemu_boot "$mode" "$d/serial.log" "$TIMEOUT" >"$d/qemu_boot.out" 2>"$d/qemu_boot.err" || true
            kill "$TAIL_PID" 2>/dev/null || true; wait "$TAIL_PID" 2>/dev/null || true; TAIL_PID=""
            line=$(grep '^qemu_boot:' "$d/qemu_boot.out" || true)
            lab_stop "$SERVER_PID"; SERVER_PID=""
            echo "  run $run $mode $c: ${line%% log=*}" >&2
            res=$(sed -n 's/.* result=\([A-Z]*\).*/\1/p' <<<"$line")
            el=$(sed -n 's/.* elapsed=\([0-9.]*\).*/\1/p' <<<"$line")
            ini=$(sed -n 's/.* initramfs=\([0-9.-]*\).*/\1/p' <<<"$line")
            k="$c,$mode"
            if [[ $res != PASS ]]; then add "$k,fail" 1; cat "$d/qemu_boot.err" >&2; continue; fi
            add "$k,elapsed" "$el"; add "$k,initramfs" "$ini"
            read -r offer stage script kernel initrd loaded <<<"$(events "$c" "$d")"
            # phases per boot (seconds); missing events give "-"
            # shellcheck disable=SC2034 # read indirectly below, as ${!m}
            read -r fw st sc kf il kb us q_rel st_rel sc_rel k_rel i_rel l_rel in_rel p_rel <<<"$(awk \
                -v t0="$t0" -v o="$offer" -v s="$stage" -v sc="$script" -v k="$kernel" -v i="$initrd" \
                -v l="$loaded" -v init="$ini" -v el="$el" '
                function d(a, b) { return (a == "-" || b == "-") ? "-" : sprintf("%.2f", b - a) }
                BEGIN {
                    tin = t0 + init; tp = t0 + el; from = (s == "-") ? o : s
                    print d(t0, o), d(o, s), d(from, sc), d(sc, i), d(i, l), d(l, tin), d(tin, tp),
                        d(o, t0), d(o, s), d(o, sc), d(o, k), d(o, i), d(o, l), d(o, tin), d(o, tp)
                }')"
            for m in fw st sc kf il kb us q_rel st_rel sc_rel k_rel i_rel l_rel in_rel p_rel; do add "$k,$m" "${!m}"; done
        done
    done
done
RUNTIME=$(($(date +%s) - START))
UPTIME1=$(uptime)

fails() { local n; n=$(tr ' ' '\n' <<<"${R[$1,fail]:-}" | grep -c . || true); [[ $n -eq 0 ]] || echo " ($n of $RUNS failed)"; }
loadstat=$(bench_loadstat "${LOADS[@]}")
{
    echo "<!-- boot:begin -->"
    echo "### QEMU (TCG) PXE boot to the initramfs's PASS marker"
    echo
    echo "Command: \`bash tests/bench/boot.sh $RUNS\` — $(date -u +%Y-%m-%d), netboot $REV, $(nproc) cores ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1)), $(uname -r), median of $RUNS runs per case, $((RUNTIME / 60)) min."
    echo "Host load (1-min load average) at each QEMU start, min / median / max: $loadstat; \`uptime\` before: \`${UPTIME0#*load average: }\`, after: \`${UPTIME1#*load average: }\`."
    echo "QEMU $(bench_ver qemu-system-x86) TCG, q35, 1 vCPU, 512 MiB, virtio-net; SeaBIOS $(bench_ver seabios) + iPXE ROM $(bench_ver ipxe-qemu) (bios); OVMF $(bench_ver ovmf) own PXE client (uefi-pxe)."
    echo "Peers: dnsmasq $(bench_ver dnsmasq-base), nginx $(bench_ver nginx) (sendfile), PXELINUX/syslinux.efi $(bench_ver syslinux-common). Kernel $(cut -d' ' -f1-2 "$IMAGE/kernel.txt" 2>/dev/null), vmlinuz $(stat -c %s "$IMAGE/vmlinuz") B, initrd.img $(stat -c %s "$IMAGE/initrd.img") B."
    echo
    echo "Seconds from QEMU start; ratio < 1 = netboot faster."
    echo
    echo "| mode | case | PASS s (runs) | initramfs s | netboot ÷ case (PASS) | netboot ÷ case (initramfs) |"
    echo "|---|---|---|---|---|---|"
    for mode in "${MODES[@]}"; do
        ne=$(med "netboot,$mode,elapsed") ni=$(med "netboot,$mode,initramfs")
        for c in "${CASES[@]}"; do
            e=$(med "$c,$mode,elapsed") i=$(med "$c,$mode,initramfs")
            if [[ $c == netboot ]]; then re="" ri=""; else re=$(bench_ratio "$ne" "$e") ri=$(bench_ratio "$ni" "$i"); fi
            echo "| $mode | $c | $e (${R[$c,$mode,elapsed]:-})$(fails "$c,$mode") | $i | $re | $ri |"
        done
    done
    echo
    echo "netboot's own log, seconds relative to its first DHCP offer (medians):"
    echo
    echo "| mode | QEMU start | first stage sent (TFTP) | iPXE script | vmlinuz GET | initrd.img GET | initrd.img loaded (iPXE) | initramfs up | PASS |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for mode in "${MODES[@]}"; do
        k="netboot,$mode"
        echo "| $mode | $(med "$k,q_rel") | $(med "$k,st_rel") | $(med "$k,sc_rel") | $(med "$k,k_rel") | $(med "$k,i_rel") | $(med "$k,l_rel") | $(med "$k,in_rel") | $(med "$k,p_rel") |"
    done
    echo
    echo "Where the time goes, all cases (medians of per-boot phases, seconds; they need not add up to the median total):"
    echo
    echo "| mode | case | QEMU → 1st offer | offer → first stage | → script/config | → initrd request (vmlinuz) | → initrd loaded | → initramfs up (kernel) | → PASS (udhcpc + check.bin) |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for mode in "${MODES[@]}"; do
        for c in "${CASES[@]}"; do
            k="$c,$mode"
            echo "| $mode | $c | $(med "$k,fw") | $(med "$k,st") | $(med "$k,sc") | $(med "$k,kf") | $(med "$k,il") | $(med "$k,kb") | $(med "$k,us") |"
        done
    done
    echo
    echo "Sources: netboot = the node's log (HTTP lines are written when the response starts, TFTP lines when the transfer is done); peer = dnsmasq's log (each line stamped on arrival) + nginx's access log (request start = \$msec − \$request_time); pxelinux = dnsmasq's TFTP completions (vmlinuz is requested when pxelinux.cfg/default is done, initrd.img when vmlinuz is done); \"initrd loaded\" is iPXE's \"initrd.img... ok\" on the serial console, stamped as it arrives (pxelinux: dnsmasq's completion). \"initramfs up\" and PASS: \`qemu_boot\`, which polls the serial console every 0.1 s."
    echo "<!-- boot:end -->"
} >"$LAB_DIR/section.md"
cat "$LAB_DIR/section.md"
bench_put_section boot "$LAB_DIR/section.md"
