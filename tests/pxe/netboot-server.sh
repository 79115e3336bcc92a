#!/usr/bin/env bash
# netboot-server.sh — the server side of netboot's PXE end-to-end tests: publishes the test
# image and the first-stage programs into a fresh node, writes its config, and runs
# `netboot node` in the foreground. Meant as run-e2e.sh's SERVER_CMD:
#
#   tests/pxe/run-e2e.sh --mode bios --ra --site-dhcp --ready udp:67 --ready tcp:80 -- \
#       tests/pxe/netboot-server.sh SCENARIO {IFACE} {SERVER_IP} {DHCP_START} {DHCP_END} {NETMASK} {LAB_DIR}
#
# SCENARIO: proxy | server | pxelinux (server mode, BIOS via PXELINUX) |
#           tamper (server mode; check.bin is damaged on disk after publishing) |
#           multihomed (server mode on a host with a second, addressed interface that
#           comes first in the interface list; created inside this lab's server namespace) |
#           sb-proxy (proxy mode, UEFI through shim + signed GRUB, the d-i build) |
#           sb-server (server mode, the same chain, files_over = "tftp"; the client's MAC is
#           assigned image e2e-b, the default stays e2e) |
#           sb-unsigned (server mode, GRUB chain; e2e v2 is the same kernel with its
#           signature stripped, which Secure Boot must refuse) |
#           arm64-grub (server mode; arm64 UEFI firmware gets Debian's signed arm64 shim, which
#           loads the signed GRUB, which boots release e2e-arm64 from NETBOOT_E2E_ARM64_IMAGE —
#           run-e2e.sh --mode arm64-pxe builds it)
#   The sb-* scenarios publish Debian's signed shim and network GRUB (shim-signed,
#   grub-efi-amd64-signed) as shimx64.efi and grubx64.efi, and boot the kernel without
#   `quiet` so that it logs the Secure Boot state. Debian 12's signed GRUB has no http
#   module, so kernels always come over TFTP here.
# Environment: NETBOOT_BIN (the netboot binary), NETBOOT_E2E_IMAGE, NETBOOT_E2E_KERNEL_ARGS,
# LAB_CLIENT_MAC (sb-server), NETBOOT_E2E_ARM64_IMAGE (arm64-grub).
set -euo pipefail
[[ $# -eq 7 ]] || { sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 4; }
scenario=$1 iface=$2 server_ip=$3 dhcp_start=$4 dhcp_end=$5 netmask=$6 lab_dir=$7
bin=${NETBOOT_BIN:?set NETBOOT_BIN to the netboot binary}
image=${NETBOOT_E2E_IMAGE:?}
kernel_args=${NETBOOT_E2E_KERNEL_ARGS:-console=ttyS0}

need() { [[ -f $1 ]] || { echo "netboot-server: $1 missing: apt-get install $2" >&2; exit 4; }; }
need /usr/lib/ipxe/undionly.kpxe ipxe
need /usr/lib/ipxe/snponly.efi ipxe
need /usr/lib/PXELINUX/lpxelinux.0 pxelinux
need /usr/lib/syslinux/modules/bios/ldlinux.c32 syslinux-common
sb=0
[[ $scenario == sb-* ]] && sb=1
if [[ $sb == 1 ]]; then
    need /usr/lib/shim/shimx64.efi.signed shim-signed
    need /usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed grub-efi-amd64-signed
    command -v sbattach >/dev/null || { echo "netboot-server: sbattach missing: apt-get install sbsigntool" >&2; exit 4; }
    # The kernel must log the Secure Boot state: no `quiet`.
    kernel_args=${kernel_args// quiet/}
fi
arm64=""
if [[ $scenario == arm64-grub ]]; then
    arm64=${NETBOOT_E2E_ARM64_IMAGE:?arm64-grub needs NETBOOT_E2E_ARM64_IMAGE (run-e2e.sh --mode arm64-pxe)}
    for f in bootnetaa64.efi grubaa64.efi linux initrd.gz check.bin; do
        need "$arm64/$f" "(tests/pxe/build-arm64-image.sh $arm64)"
    done
fi

if [[ $scenario == multihomed ]]; then
    # Another network on the same host, with its own address and a broadcast route: the node
    # must answer only on the configured boot interface. Both ends live in this (the lab's)
    # namespace and are removed with it.
    ip link add nbx0 type veth peer name nbx1
    ip addr add 192.168.77.1/24 dev nbx0
    ip link set nbx0 up
    ip link set nbx1 up
fi

work="$lab_dir/netboot"
mkdir -p "$work"
key=$("$bin" keygen --out "$work/publisher.key" 2>/dev/null)
dhcp_mode=server
[[ $scenario == proxy || $scenario == sb-proxy ]] && dhcp_mode=proxy
{
    echo "data_dir = \"data\""
    echo "trusted_publishers = [\"$key\"]"
    echo "[dhcp]"
    echo "mode = \"$dhcp_mode\""
    echo "interface = \"$iface\""
    echo "server_ip = \"$server_ip\""
    if [[ $dhcp_mode == server ]]; then
        echo "[dhcp.pool]"
        echo "range_start = \"$dhcp_start\""
        echo "range_end = \"$dhcp_end\""
        echo "subnet_mask = \"$netmask\""
        echo "lease_file = \"$work/leases.json\""
    fi
    echo "[http]"
    echo "listen = \"0.0.0.0:80\""
    echo "[boot]"
    if [[ -n $arm64 ]]; then
        echo "default_image = \"e2e-arm64\""
        echo "efi_loader = \"grub\""
    else
        echo "default_image = \"e2e\""
    fi
    echo "efi_x64 = \"snponly.efi\""
    [[ $scenario == pxelinux ]] && echo "bios_loader = \"pxelinux\""
    if [[ $sb == 1 ]]; then
        echo "efi_loader = \"grub\""
        if [[ $scenario == sb-server ]]; then
            echo "[boot.grub]"
            echo "files_over = \"tftp\""
            echo "[machines]"
            echo "\"${LAB_CLIENT_MAC:?}\" = \"e2e-b\""
        fi
    fi
    if [[ -n $arm64 ]]; then
        # The arm64 chain under the names Debian's d-i package gives them; shim asks for
        # grubaa64.efi by that bare name.
        echo "[boot.grub]"
        echo "efi_arm64 = \"bootnetaa64.efi\""
        echo "grub_arm64 = \"grubaa64.efi\""
    fi
} >"$work/node.toml"

publish() { "$bin" publish --config "$work/node.toml" --key "$work/publisher.key" "$@" >/dev/null; }
# First-stage programs, published like any image: served verified over TFTP and HTTP.
first_stage=(--file /usr/lib/ipxe/undionly.kpxe --file /usr/lib/ipxe/ipxe.efi
    --file /usr/lib/ipxe/snponly.efi --file /usr/lib/PXELINUX/lpxelinux.0
    --file /usr/lib/syslinux/modules/bios/ldlinux.c32)
if [[ $sb == 1 ]]; then
    # The Secure Boot chain from Debian's packages, under the names shim and GRUB ask for.
    # sb-proxy uses the d-i build (prefix /debian-installer/amd64/grub), the others the
    # plain network build (prefix /grub): the node must answer where each looks.
    grub=/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed
    [[ $scenario == sb-proxy ]] && grub=/usr/lib/grub/x86_64-efi-signed/grubnetx64-installer.efi.signed
    first_stage+=(--file shimx64.efi=/usr/lib/shim/shimx64.efi.signed --file "grubx64.efi=$grub")
fi
# Debian's signed arm64 shim and GRUB, published as they are: netboot re-signs nothing.
[[ -z $arm64 ]] || first_stage+=(--file "$arm64/bootnetaa64.efi" --file "$arm64/grubaa64.efi")
publish --name ipxe "${first_stage[@]}"
publish --name e2e --kernel "$image/vmlinuz" --initrd "$image/initrd.img" --file "$image/check.bin" \
    --cmdline "$kernel_args netboot_check={{image_url}}/check.bin"
if [[ $scenario == sb-server ]]; then
    publish --name e2e-b --kernel "$image/vmlinuz" --initrd "$image/initrd.img" --file "$image/check.bin" \
        --cmdline "$kernel_args netboot_check={{image_url}}/check.bin"
fi
if [[ -n $arm64 ]]; then
    # The installer's initrd with the test /init over it (build-arm64-image.sh). The arm64
    # serial console is ttyAMA0; no `quiet`, so that the kernel logs the Secure Boot state.
    publish --name e2e-arm64 --kernel "$arm64/linux" --initrd "$arm64/initrd.gz" \
        --file "$arm64/check.bin" --cmdline "console=ttyAMA0 panic=-1 netboot_check={{image_url}}/check.bin"
fi
if [[ $scenario == sb-unsigned ]]; then
    # Its publisher signed the release, so the node serves it; only the client can tell.
    cp "$image/vmlinuz" "$work/vmlinuz-unsigned"
    sbattach --remove "$work/vmlinuz-unsigned"
    publish --name e2e --kernel "vmlinuz=$work/vmlinuz-unsigned" --initrd "$image/initrd.img" \
        --file "$image/check.bin" --cmdline "$kernel_args netboot_check={{image_url}}/check.bin"
fi

if [[ $scenario == tamper ]]; then
    # Behind the store's back: one byte of check.bin on disk.
    hash=$(b3=$("$bin" images --config "$work/node.toml" --json) && python3 -c '
import json,sys
for i in json.loads(sys.argv[1])["images"]:
    for f in i["files"]:
        if f["path"] == "check.bin": print(f["blake3"])' "$b3")
    blob="$work/data/blobs/data/$hash.data"
    printf '\xff' | dd of="$blob" bs=1 seek=1000 conv=notrunc status=none
    echo "netboot-server: damaged $blob"
fi
exec "$bin" node --config "$work/node.toml"
