#!/usr/bin/env bash
# run-e2e.sh — one-shot end-to-end PXE test of a server under test (e.g. netboot):
# build/reuse the boot image, create a lab, start SERVER_CMD in the server namespace,
# boot the client VM in each MODE, tear everything down.
#
# Usage: tests/pxe/run-e2e.sh [OPTIONS] -- SERVER_CMD [ARG...]
#   --mode MODE        bios | uefi-ipxe | uefi-pxe | uefi-sb (Secure Boot enforced) | uefi-http |
#                      arm64-pxe (see qemu_boot in lab.sh); repeatable, booted in order
#                      (default: bios)
#   --timeout SECONDS  per boot (default 180)
#   --image DIR        boot image dir (default $NETBOOT_TEST_CACHE/image, built/refreshed
#                      with build-boot-image.sh; NETBOOT_TEST_CACHE defaults to
#                      /var/cache/netboot-tests)
#                      With an arm64-pxe mode, also $NETBOOT_TEST_CACHE/arm64 (build-arm64-image.sh:
#                      Debian's signed arm64 shim, GRUB and kernel, installer initrd + test /init)
#   --site-dhcp        also create the site namespace with a plain DHCP server (dnsmasq,
#                      addresses only) — for testing a proxy-DHCP server
#   --site-next-server the site DHCP server also names the server under test as next-server
#                      (siaddr; no boot file), as GRUB 2.06 in proxy setups needs
#   --ra               run the lab's RA responder (router lifetime 0) in the server namespace
#   --ready PROTO:PORT wait (up to 10 s) until the server listens on PROTO (tcp|udp) PORT before
#                      booting; repeatable; default udp:67; "--ready none" disables
#   --nic NIC          virtio-net-pci (default) | e1000 | e1000e | rtl8139
#   --logdir DIR       copy the logs (serial-N-MODE.log, server.log, ra/dnsmasq logs) into DIR
#   --scrape URL       GET URL (placeholders as in SERVER_CMD; e.g. http://{SERVER_IP}/metrics)
#                      inside the server namespace once the server is ready and after each
#                      boot, into scrape-0-before.log and scrape-N-MODE.log (kept by --logdir)
#
# SERVER_CMD runs in the server namespace (LAB_NS_SERVER) with stdout+stderr in server.log.
# In its arguments these placeholders are replaced:
#   {IFACE} {SERVER_IP} {PREFIX} {NETMASK} {SUBNET} {NET} {DHCP_START} {DHCP_END}
#   {SITE_IP} {CLIENT_MAC} {IMAGE} {ARM64_IMAGE} {LAB_DIR}
# and its environment has all LAB_* variables (see lab.sh) plus
#   NETBOOT_E2E_IMAGE        dir with vmlinuz, initrd.img, check.bin
#   NETBOOT_E2E_ARM64_IMAGE  (arm64-pxe only) dir with bootnetaa64.efi, grubaa64.efi, linux,
#                            initrd.gz, check.bin
#   NETBOOT_E2E_KERNEL_ARGS  suggested kernel args: "console=ttyS0 quiet panic=-1"
#                            (add netboot_check=http://.../check.bin, and initrd=initrd.img
#                            for UEFI)
#
# stdout: one "qemu_boot: mode=... result=... elapsed=..." line per boot, then
#         "run-e2e: PASS|FAIL modes=..." ; failure details on stderr.
# Exit:   0 all boots PASS; 1 FAIL marker; 2 timeout; 3 QEMU exited without verdict
#         (first failing boot's code); 4 usage / missing prerequisite;
#         5 server exited early or never became ready.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lab.sh
source "$here/lab.sh"

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 4
}

modes=() ready=() timeout=180 image="" site_dhcp=0 site_next=0 ra=0 logdir="" arm64=0 arm64_image="" scrape=""
while [[ $# -gt 0 ]]; do
    case $1 in
    --mode) modes+=("${2:?}"); shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    --image) image=${2:?}; shift 2 ;;
    --site-dhcp) site_dhcp=1; shift ;;
    --site-next-server) site_next=1; shift ;;
    --ra) ra=1; shift ;;
    --ready) ready+=("${2:?}"); shift 2 ;;
    --nic) export LAB_NIC=${2:?}; shift 2 ;;
    --logdir) logdir=${2:?}; shift 2 ;;
    --scrape) scrape=${2:?}; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
    esac
done
[[ $# -gt 0 ]] || usage
[[ ${#modes[@]} -gt 0 ]] || modes=(bios)
[[ ${#ready[@]} -gt 0 ]] || ready=(udp:67)
for m in "${modes[@]}"; do
    case $m in bios | uefi-ipxe | uefi-pxe | uefi-sb | uefi-http) ;; arm64-pxe) arm64=1 ;; *) usage ;; esac
done
[[ $timeout =~ ^[0-9]+$ ]] || usage

if [[ -z $image ]]; then
    image="${NETBOOT_TEST_CACHE:-/var/cache/netboot-tests}/image"
    "$here/build-boot-image.sh" "$image" || exit 4
fi
for f in vmlinuz initrd.img check.bin; do
    [[ -s $image/$f ]] || {
        lab__err "$image/$f missing (run tests/pxe/build-boot-image.sh $image)"
        exit 4
    }
done
image=$(cd "$image" && pwd)
if [[ $arm64 == 1 ]]; then
    arm64_image="${NETBOOT_TEST_CACHE:-/var/cache/netboot-tests}/arm64"
    "$here/build-arm64-image.sh" "$arm64_image" || exit 4
fi
[[ $site_dhcp == 0 ]] || lab__need dnsmasq dnsmasq || exit 4

# shellcheck disable=SC2317 # called from traps
save_logs() {
    [[ -n $logdir && -n ${LAB_DIR:-} && -d $LAB_DIR ]] || return 0
    mkdir -p "$logdir"
    cp "$LAB_DIR"/*.log "$LAB_DIR"/*.conf "$logdir/" 2>/dev/null || true
}
# shellcheck disable=SC2317 # called from traps
finish() {
    save_logs
    lab_down
}
export LAB_NO_TRAP=1
if [[ $site_dhcp == 1 ]]; then lab_up site || exit 4; else lab_up || exit 4; fi
trap finish EXIT
trap 'finish; trap - EXIT; exit 130' INT
trap 'finish; trap - EXIT; exit 143' TERM

export NETBOOT_E2E_IMAGE=$image
export NETBOOT_E2E_ARM64_IMAGE=$arm64_image
export NETBOOT_E2E_KERNEL_ARGS="console=ttyS0 quiet panic=-1"

if [[ $site_dhcp == 1 ]]; then
    [[ $site_next == 0 ]] || export LAB_SITE_NEXT_SERVER=$LAB_SERVER_IP
    lab_site_dhcp || exit 4
fi
if [[ $ra == 1 ]]; then lab_ra_responder || exit 4; fi

# The placeholders of SERVER_CMD and --scrape, filled in.
fill() {
    local a=$1
    a=${a//\{IFACE\}/$LAB_IFACE_SERVER}
    a=${a//\{SERVER_IP\}/$LAB_SERVER_IP}
    a=${a//\{PREFIX\}/$LAB_PREFIX}
    a=${a//\{NETMASK\}/$LAB_NETMASK}
    a=${a//\{SUBNET\}/$LAB_SUBNET}
    a=${a//\{NET\}/$LAB_NET}
    a=${a//\{DHCP_START\}/$LAB_DHCP_START}
    a=${a//\{DHCP_END\}/$LAB_DHCP_END}
    a=${a//\{SITE_IP\}/$LAB_SITE_IP}
    a=${a//\{CLIENT_MAC\}/$LAB_CLIENT_MAC}
    a=${a//\{IMAGE\}/$image}
    a=${a//\{ARM64_IMAGE\}/$arm64_image}
    a=${a//\{LAB_DIR\}/$LAB_DIR}
    printf '%s' "$a"
}
cmd=()
for a in "$@"; do
    cmd+=("$(fill "$a")")
done
[[ -z $scrape ]] || scrape=$(fill "$scrape")
# A failed scrape leaves its file out; the caller's check then says what is missing.
scrape_to() {
    [[ -n $scrape ]] || return 0
    ip netns exec "$LAB_NS_SERVER" curl -sSf --max-time 10 -o "$LAB_DIR/$1" "$scrape" ||
        lab__err "GET $scrape failed"
}
lab_bg_in_server --log "$LAB_DIR/server.log" "${cmd[@]}"
server_pid=$LAB_LAST_PID

server_failed() {
    lab__err "$1"
    echo "---- server.log (tail) ----" >&2
    tail -n 40 "$LAB_DIR/server.log" >&2 || true
    echo "run-e2e: FAIL server"
    exit 5
}
for r in "${ready[@]}"; do
    [[ $r == none ]] && continue
    [[ $r =~ ^(tcp|udp):([0-9]+)$ ]] || usage
    for ((i = 0; ; i++)); do
        lab__gone "$server_pid" && server_failed "server exited before listening on $r"
        lab_wait_listen "$LAB_NS_SERVER" "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" 1 2>/dev/null && break
        [[ $i -lt 10 ]] || server_failed "server not listening on $r after 10 s"
    done
done
sleep 0.2
lab__gone "$server_pid" && server_failed "server exited before the first boot"
scrape_to scrape-0-before.log

rc=0 n=0
for m in "${modes[@]}"; do
    brc=0 n=$((n + 1))
    qemu_boot "$m" "$LAB_DIR/serial-$n-$m.log" "$timeout" || brc=$?
    scrape_to "scrape-$n-$m.log"
    if [[ $brc -ne 0 ]]; then
        [[ $rc -ne 0 ]] || rc=$brc
        echo "---- server.log (tail) ----" >&2
        tail -n 30 "$LAB_DIR/server.log" >&2 || true
    fi
    lab__gone "$server_pid" && server_failed "server exited during the $m boot"
done
if [[ $rc -eq 0 ]]; then
    echo "run-e2e: PASS modes=${modes[*]}"
else
    echo "run-e2e: FAIL modes=${modes[*]}"
fi
exit "$rc"
