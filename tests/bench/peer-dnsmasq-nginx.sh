#!/usr/bin/env bash
# peer-dnsmasq-nginx.sh — the boot benchmark's peers (NOT netboot): dnsmasq as proxy-DHCP +
# TFTP, and nginx (sendfile) for HTTP. Runs in the foreground in the lab's server namespace;
# meant as tests/pxe/run-e2e.sh's SERVER_CMD (with --site-dhcp: the addresses come from the
# lab's site DHCP server) or as tests/bench/boot.sh's peer:
#
#   tests/pxe/run-e2e.sh --site-dhcp --ra --mode bios --mode uefi-pxe \
#       --ready udp:67 --ready tcp:80 -- tests/bench/peer-dnsmasq-nginx.sh ipxe|pxelinux
#
#   ipxe      the same path as netboot in proxy mode: proxy-DHCP (dhcp-range=NET.0,proxy);
#             PXE ROMs get undionly.kpxe (BIOS) or snponly.efi (x86-64 UEFI) over TFTP,
#             iPXE (user-class "iPXE") gets http://SERVER/boot.ipxe, which loads vmlinuz +
#             initrd.img over HTTP from nginx.
#   pxelinux  the classic path: proxy-DHCP hands out pxelinux.0 (BIOS; Debian's pxelinux +
#             syslinux-common, ldlinux.c32) or syslinux.efi (x86-64 UEFI; syslinux-efi,
#             ldlinux.e64) to every client; pxelinux.cfg/default loads vmlinuz + initrd.img
#             over TFTP. nginx only serves check.bin, which the initramfs fetches over HTTP.
#   grub      the Secure Boot chain the d-i way: proxy-DHCP hands x86-64 UEFI firmware
#             Debian's signed shim (shim-signed), which fetches grubx64.efi (the signed d-i
#             network GRUB, grub-efi-amd64-signed) from the TFTP root; GRUB reads a static
#             debian-installer/amd64/grub/grub.cfg and loads vmlinuz + initrd.img over TFTP.
#             GRUB 2.06 finds the TFTP server only as next-server of the site's DHCP ACK
#             (LAB_SITE_NEXT_SERVER). nginx only serves check.bin.
# Kernel command line: initrd=initrd.img (not for grub: GRUB loads the initrd itself)
#   NETBOOT_E2E_KERNEL_ARGS netboot_check=http://LAB_SERVER_IP/check.bin
#
# Environment: LAB_IFACE_SERVER, LAB_SERVER_IP, LAB_NET, LAB_NETMASK, LAB_DIR (lab.sh),
#   NETBOOT_E2E_IMAGE, NETBOOT_E2E_KERNEL_ARGS (run-e2e.sh); PEER_DIR (default
#   $LAB_DIR/peer-KIND; emptied first) for the roots, configs and logs:
#   dnsmasq.log  dnsmasq's log, each line prefixed with the epoch time it was written
#   access.log   nginx: "$msec $request_time $status $body_bytes_sent $request" ($msec is
#                the time the response was done)
#   nginx-error.log, dnsmasq.conf, nginx.conf, tftp/, http/
# nginx runs with its own config, pid and logs under PEER_DIR (never the system service).
# Exit: status of whichever child exited first; 143/130 on TERM/INT; 2 usage / missing prerequisite.
set -euo pipefail
# shellcheck source=../pxe/peer-lib.sh
source "$(dirname "$0")/../pxe/peer-lib.sh"

die2() { echo "peer-dnsmasq-nginx: ERROR: $*" >&2; exit 2; }
kind=${1:-}
[[ $kind == ipxe || $kind == pxelinux || $kind == grub ]] || die2 "usage: peer-dnsmasq-nginx.sh ipxe|pxelinux|grub"
for v in LAB_IFACE_SERVER LAB_SERVER_IP LAB_NET LAB_NETMASK LAB_DIR NETBOOT_E2E_IMAGE; do
    [[ -n ${!v:-} ]] || die2 "$v is not set (run me through run-e2e.sh or boot.sh)"
done
command -v dnsmasq >/dev/null || die2 "dnsmasq not found: apt-get install dnsmasq-base"
command -v nginx >/dev/null || die2 "nginx not found: apt-get install nginx-light"
need() { [[ -e $1 ]] || die2 "$1 not found: apt-get install $2"; }
shim=/usr/lib/shim/shimx64.efi.signed
grub=/usr/lib/grub/x86_64-efi-signed/grubnetx64-installer.efi.signed
if [[ $kind == ipxe ]]; then
    need /usr/lib/ipxe/undionly.kpxe ipxe
    need /usr/lib/ipxe/snponly.efi ipxe
elif [[ $kind == grub ]]; then
    need "$shim" shim-signed
    need "$grub" grub-efi-amd64-signed
else
    need /usr/lib/PXELINUX/pxelinux.0 pxelinux
    need /usr/lib/syslinux/modules/bios/ldlinux.c32 syslinux-common
    need /usr/lib/SYSLINUX.EFI/efi64/syslinux.efi syslinux-efi
    need /usr/lib/syslinux/modules/efi64/ldlinux.e64 syslinux-common
fi

dir=${PEER_DIR:-$LAB_DIR/peer-$kind}
rm -rf "$dir"
mkdir -p "$dir/tftp" "$dir/http" "$dir/tmp"
base="http://$LAB_SERVER_IP"
img=$NETBOOT_E2E_IMAGE
cmdline="${NETBOOT_E2E_KERNEL_ARGS:-console=ttyS0} netboot_check=$base/check.bin"
[[ $kind == grub ]] || cmdline="initrd=initrd.img $cmdline"

ln -s "$img/check.bin" "$dir/http/"
if [[ $kind == grub ]]; then
    ln -s "$img/vmlinuz" "$img/initrd.img" "$dir/tftp/"
    ln -s "$shim" "$dir/tftp/shimx64.efi"
    ln -s "$grub" "$dir/tftp/grubx64.efi"
    mkdir -p "$dir/tftp/debian-installer/amd64/grub"
    cat >"$dir/tftp/debian-installer/amd64/grub/grub.cfg" <<EOF
set timeout=0
menuentry e2e {
    linux /vmlinuz $cmdline
    initrd /initrd.img
}
EOF
elif [[ $kind == ipxe ]]; then
    ln -s /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/snponly.efi "$dir/tftp/"
    ln -s "$img/vmlinuz" "$img/initrd.img" "$dir/http/"
    cat >"$dir/http/boot.ipxe" <<EOF
#!ipxe
kernel $base/vmlinuz $cmdline
initrd $base/initrd.img
boot
EOF
else
    ln -s /usr/lib/PXELINUX/pxelinux.0 /usr/lib/syslinux/modules/bios/ldlinux.c32 \
        /usr/lib/SYSLINUX.EFI/efi64/syslinux.efi /usr/lib/syslinux/modules/efi64/ldlinux.e64 \
        "$img/vmlinuz" "$img/initrd.img" "$dir/tftp/"
    mkdir "$dir/tftp/pxelinux.cfg"
    cat >"$dir/tftp/pxelinux.cfg/default" <<EOF
DEFAULT e2e
PROMPT 0
TIMEOUT 0
LABEL e2e
  KERNEL vmlinuz
  APPEND $cmdline
EOF
fi

{
    dnsmasq_base_conf "$dir/dnsmasq"
    echo "enable-tftp"
    echo "tftp-root=$dir/tftp"
    echo "dhcp-range=$LAB_NET.0,proxy,$LAB_NETMASK"
    if [[ $kind == ipxe ]]; then
        echo "dhcp-userclass=set:ipxe,iPXE"
        echo "pxe-service=tag:!ipxe,x86PC,\"peer: chain to iPXE\",undionly.kpxe"
        echo "pxe-service=tag:ipxe,x86PC,\"peer: iPXE script\",$base/boot.ipxe"
        echo "pxe-service=tag:!ipxe,X86-64_EFI,\"peer: chain to iPXE\",snponly.efi"
        echo "pxe-service=tag:ipxe,X86-64_EFI,\"peer: iPXE script\",$base/boot.ipxe"
    elif [[ $kind == grub ]]; then
        echo "pxe-service=X86-64_EFI,\"peer: shim + GRUB\",shimx64.efi"
    else
        echo "pxe-service=x86PC,\"peer: PXELINUX\",pxelinux.0"
        echo "pxe-service=X86-64_EFI,\"peer: SYSLINUX EFI\",syslinux.efi"
    fi
} >"$dir/dnsmasq.conf"

cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
user root root;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log info;
events { worker_connections 256; }
http {
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    log_format bench '\$msec \$request_time \$status \$body_bytes_sent "\$request"';
    access_log $dir/access.log bench;
    server {
        listen $LAB_SERVER_IP:80;
        root $dir/http;
    }
}
EOF

# Children of this script, reaped when it is stopped (TERM/INT) or when one of them exits.
nginx -p "$dir/" -e "$dir/nginx-error.log" -c "$dir/nginx.conf" &
http_pid=$!
# dnsmasq's own log has one-second timestamps at best: stamp each line with the epoch time
stamp() { while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }
dnsmasq --keep-in-foreground --conf-file="$dir/dnsmasq.conf" > >(stamp >>"$dir/dnsmasq.log") 2>&1 &
dns_pid=$!
supervise peer-dnsmasq-nginx "$http_pid" "$dns_pid"
