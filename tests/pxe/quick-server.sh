#!/usr/bin/env bash
# quick-server.sh — runs `netboot quick` (no config file) as run-e2e.sh's SERVER_CMD:
#
#   tests/pxe/run-e2e.sh --site-dhcp --ra --mode bios --mode uefi-pxe \
#       --ready udp:67 --ready tcp:80 -- tests/pxe/quick-server.sh {IFACE} {SITE_IP} STATE_DIR
#
# The server namespace first gets a default route via the site DHCP server's address (the
# office router; an address inside this lab), so that `netboot quick` picks its interface
# from the routing table as on a real host; it is given no --interface. It publishes the test
# image (kernel, initrd, check.bin) and Debian's iPXE programs itself.
#
# STATE_DIR (made by the caller, outside the lab dir, so it outlives the lab):
#   tmp/        netboot quick's TMPDIR: its temporary directory is created here
#   quick.exit  netboot quick's exit status, written once it has ended
# When this script is told to stop (SIGTERM from lab_down), it stops netboot quick with
# SIGINT, as Ctrl-C would, and waits for it. netboot quick runs in its own session, so the
# TERM sent to this script's process group does not reach it.
# Environment: NETBOOT_BIN, NETBOOT_E2E_IMAGE, NETBOOT_E2E_KERNEL_ARGS (from run-e2e.sh).
set -euo pipefail
[[ $# -eq 3 ]] || { sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 4; }
iface=$1 site_ip=$2 state=$3
bin=${NETBOOT_BIN:?set NETBOOT_BIN to the netboot binary}
image=${NETBOOT_E2E_IMAGE:?}
kernel_args=${NETBOOT_E2E_KERNEL_ARGS:-console=ttyS0}
[[ -n $site_ip ]] || { echo "quick-server: no site address: run-e2e.sh needs --site-dhcp" >&2; exit 4; }
[[ -d $state ]] || { echo "quick-server: state dir $state missing" >&2; exit 4; }

ip route add default via "$site_ip" dev "$iface"
mkdir -p "$state/tmp"

TMPDIR="$state/tmp" setsid "$bin" quick --kernel "$image/vmlinuz" --initrd "$image/initrd.img" \
    --file "$image/check.bin" --cmdline "$kernel_args netboot_check={{image_url}}/check.bin" &
pid=$!

finish() {
    local status=0
    wait "$pid" || status=$?
    echo "$status" >"$state/quick.exit"
    echo "quick-server: netboot quick exited with status $status"
}
stop() {
    # lab_down signals this script twice (its process group, then its pid): ignore the
    # second TERM rather than die of it before quick.exit is written.
    trap '' TERM INT
    echo "quick-server: stopping netboot quick with SIGINT"
    kill -INT "$pid" 2>/dev/null || true
    finish
    exit 0
}
trap stop TERM INT
finish
exit 1 # it must run until stopped
