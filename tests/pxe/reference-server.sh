#!/usr/bin/env bash
# reference-server.sh — a reference PXE server (dnsmasq + python3 http.server), NOT netboot.
# Used by selftest-dnsmasq.sh through run-e2e.sh to prove the harness; also handy to compare
# against netboot. Runs in the foreground inside the lab's server namespace.
#
# Usage (normally via run-e2e.sh, which sets the environment):
#   tests/pxe/run-e2e.sh --ready udp:67 --ready tcp:8080 [--site-dhcp] -- \
#       tests/pxe/reference-server.sh full|proxy
#   full   dnsmasq is the DHCP server (range LAB_DHCP_START..LAB_DHCP_END) + TFTP
#   proxy  dnsmasq is a proxy-DHCP (dhcp-range=LAB_NET.0,proxy) + TFTP + port 4011 boot
#          service; the addresses come from someone else (run-e2e.sh --site-dhcp)
# Both: TFTP root /usr/lib/ipxe; clients without user-class "iPXE" get undionly.kpxe (BIOS)
# or snponly.efi (x86-64 UEFI); iPXE clients get http://LAB_SERVER_IP:8080/boot.ipxe, which
# loads vmlinuz + initrd.img from NETBOOT_E2E_IMAGE with
# "initrd=initrd.img NETBOOT_E2E_KERNEL_ARGS netboot_check=http://LAB_SERVER_IP:8080/check.bin".
#
# Environment: LAB_IFACE_SERVER, LAB_SERVER_IP, LAB_NET, LAB_NETMASK, LAB_DHCP_START,
#   LAB_DHCP_END, LAB_DIR (from lab.sh), NETBOOT_E2E_IMAGE, NETBOOT_E2E_KERNEL_ARGS;
#   REF_HTTP_PORT (default 8080); REF_NO_PING=1 (default; 0 = stock ping-before-offer);
#   REF_OPT60=1 (default; full mode: send option 60 "PXEClient" to iPXE clients).
# Writes $LAB_DIR/dnsmasq-server.{conf,log,leases}, $LAB_DIR/http.log, $LAB_DIR/http/.
# Exit: status of whichever child exited first; 143/130 on TERM/INT; 2 usage / missing prerequisite.
set -euo pipefail
# shellcheck source=peer-lib.sh
source "$(dirname "$0")/peer-lib.sh"

die2() { echo "reference-server: ERROR: $*" >&2; exit 2; }
kind=${1:-}
[[ $kind == full || $kind == proxy ]] || die2 "usage: reference-server.sh full|proxy"
for v in LAB_IFACE_SERVER LAB_SERVER_IP LAB_NET LAB_NETMASK LAB_DHCP_START LAB_DHCP_END LAB_DIR NETBOOT_E2E_IMAGE; do
    [[ -n ${!v:-} ]] || die2 "$v is not set (run me through run-e2e.sh)"
done
command -v dnsmasq >/dev/null || die2 "dnsmasq not found — install the Debian package: apt-get install dnsmasq"
command -v python3 >/dev/null || die2 "python3 not found — install the Debian package: apt-get install python3-minimal"
for f in undionly.kpxe snponly.efi; do
    [[ -e /usr/lib/ipxe/$f ]] || die2 "/usr/lib/ipxe/$f not found — install the Debian package: apt-get install ipxe"
done

port=${REF_HTTP_PORT:-8080}
base="http://$LAB_SERVER_IP:$port"
dir="$LAB_DIR/http"
mkdir -p "$dir"
ln -sf "$NETBOOT_E2E_IMAGE/vmlinuz" "$NETBOOT_E2E_IMAGE/initrd.img" "$NETBOOT_E2E_IMAGE/check.bin" "$dir/"
# initrd=initrd.img: the EFI stub needs it under UEFI (pxe-lab.md gotcha 6); BIOS ignores it
cat >"$dir/boot.ipxe" <<EOF
#!ipxe
echo NETBOOT-E2E: iPXE script loaded (platform \${platform}, ip \${ip})
kernel $base/vmlinuz initrd=initrd.img ${NETBOOT_E2E_KERNEL_ARGS:-console=ttyS0} netboot_check=$base/check.bin
initrd $base/initrd.img
boot
EOF

conf="$LAB_DIR/dnsmasq-server.conf"
{
    dnsmasq_base_conf "$LAB_DIR/dnsmasq-server"
    echo "enable-tftp"
    echo "tftp-root=/usr/lib/ipxe"
    echo "dhcp-userclass=set:ipxe,iPXE"
    if [[ $kind == full ]]; then
        echo "dhcp-range=$LAB_DHCP_START,$LAB_DHCP_END,$LAB_NETMASK,1h"
        echo "dhcp-authoritative"
        echo "dhcp-match=set:efi64,option:client-arch,7"
        echo "dhcp-match=set:efi64,option:client-arch,9"
        echo "dhcp-boot=tag:ipxe,$base/boot.ipxe"
        echo "dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi"
        echo "dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe"
        [[ ${REF_NO_PING:-1} != 1 ]] || echo "no-ping"
        # pxe-lab.md gotcha 2: iPXE stops waiting for proxy offers when the offer carries
        # 60=PXEClient; only iPXE gets it (EDK2 rejects 60=PXEClient without option 43).
        [[ ${REF_OPT60:-1} != 1 ]] || echo "dhcp-option-force=tag:ipxe,60,PXEClient"
    else
        echo "dhcp-range=$LAB_NET.0,proxy,$LAB_NETMASK"
        echo "pxe-service=tag:!ipxe,x86PC,\"reference: chain to iPXE\",undionly.kpxe"
        echo "pxe-service=tag:ipxe,x86PC,\"reference: iPXE script\",$base/boot.ipxe"
        echo "pxe-service=tag:!ipxe,X86-64_EFI,\"reference: chain to iPXE\",snponly.efi"
        echo "pxe-service=tag:ipxe,X86-64_EFI,\"reference: iPXE script\",$base/boot.ipxe"
    fi
} >"$conf"

# Both run as children of this script, which reaps them when it is stopped (TERM/INT) or when
# one of them exits, so the lab's teardown leaves no orphans behind.
python3 -u -m http.server "$port" --bind "$LAB_SERVER_IP" --directory "$dir" >>"$LAB_DIR/http.log" 2>&1 &
http_pid=$!
dnsmasq --keep-in-foreground --conf-file="$conf" >>"$LAB_DIR/dnsmasq-server.log" 2>&1 &
dns_pid=$!
supervise reference-server "$http_pid" "$dns_pid"
