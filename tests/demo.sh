#!/usr/bin/env bash
# The netboot demo (as root on Debian): a branch office whose router already runs DHCP gets a
# netboot node in proxy-DHCP mode; a BIOS and a UEFI machine (QEMU) boot a signed Debian
# kernel + initramfs from it, and the initramfs checks a file fetched from the node.
# Everything runs in throw-away network namespaces; nothing touches the host's network.
#
#   bash tests/demo.sh
#
# The node's log (one line per DHCP, TFTP and HTTP transaction) is printed at the end and
# kept, with the VMs' serial consoles, in ./demo-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh
cargo build --locked -p netboot-cli
logs="$PWD/demo-logs"
rm -rf "$logs" && mkdir -p "$logs"
echo "== booting a BIOS and a UEFI client from a netboot node (proxy-DHCP beside the site's DHCP server)"
status=0
NETBOOT_BIN="$PWD/target/debug/netboot" tests/pxe/run-e2e.sh \
    --mode bios --mode uefi-pxe --ra --site-dhcp --ready udp:67 --ready tcp:80 --logdir "$logs" -- \
    tests/pxe/netboot-server.sh proxy {IFACE} {SERVER_IP} {DHCP_START} {DHCP_END} {NETMASK} {LAB_DIR} || status=$?
echo
echo "== what the node logged"
grep -E " (INFO|WARN|ERROR) " "$logs/server.log" | sed -E 's/^[^ ]+ +//' || true
echo
echo "== the clients' consoles say"
grep -ah "NETBOOT-E2E" "$logs"/serial-*.log | sed -E "s/\x1b\[[0-9;?]*[a-zA-Z]//g" || true
exit "$status"
