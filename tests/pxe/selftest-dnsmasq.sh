#!/usr/bin/env bash
# selftest-dnsmasq.sh — prove the PXE harness works, using the reference server
# (reference-server.sh: dnsmasq + python3 http.server), not netboot.
#
# Usage: tests/pxe/selftest-dnsmasq.sh [CASE...]
#   CASE (default: bios uefi-ipxe uefi-pxe proxy-bios):
#     bios, uefi-ipxe, uefi-pxe    dnsmasq is the only DHCP server (DHCP + TFTP); iPXE is
#                                  detected by user-class "iPXE" and gets an HTTP iPXE script
#     proxy-bios, proxy-uefi-ipxe, proxy-uefi-pxe
#                                  a plain site dnsmasq (LAB_NS_SITE) hands out addresses only;
#                                  the server's dnsmasq is proxy-DHCP (dhcp-range=...,proxy)
#   The full-DHCP cases share one lab (one run-e2e.sh call), the proxy cases another.
#
# Environment:
#   SELFTEST_TIMEOUT   per boot, seconds (default 180)
#   SELFTEST_REPEAT    boots per case (default 1); the summary shows each time and the median
#   SELFTEST_RA        1 (default): run the lab's RA responder in the server namespace; 0: don't
#   SELFTEST_NO_PING   1 (default): dnsmasq no-ping; 0: stock ping-before-offer
#   SELFTEST_OPT60     1 (default): send option 60 "PXEClient" to iPXE clients (full DHCP cases)
#   SELFTEST_LOGDIR    keep all logs here (default: a temp dir, removed on success)
#   NETBOOT_TEST_CACHE cache dir (default /var/cache/netboot-tests); image in .../image
#
# Output: progress on stderr; on stdout the qemu_boot lines and a summary
#   "selftest: CASE PASS|FAIL median=S times=S S ..." (seconds from QEMU start to PASS marker).
# Exit: 0 if every boot passed, 1 otherwise, 2 on usage error / missing prerequisite.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

CASES=("$@")
[[ ${#CASES[@]} -gt 0 ]] || CASES=(bios uefi-ipxe uefi-pxe proxy-bios)
for c in "${CASES[@]}"; do
    case $c in
    bios | uefi-ipxe | uefi-pxe | proxy-bios | proxy-uefi-ipxe | proxy-uefi-pxe) ;;
    *) usage ;;
    esac
done
TIMEOUT=${SELFTEST_TIMEOUT:-180}
REPEAT=${SELFTEST_REPEAT:-1}
RA=${SELFTEST_RA:-1}
export REF_NO_PING=${SELFTEST_NO_PING:-1}
export REF_OPT60=${SELFTEST_OPT60:-1}
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || usage

command -v dnsmasq >/dev/null || {
    echo "selftest: ERROR: dnsmasq not found — install the Debian package: apt-get install dnsmasq" >&2
    exit 2
}

logroot=${SELFTEST_LOGDIR:-}
keep_logs=1
if [[ -z $logroot ]]; then
    logroot=$(mktemp -d "${TMPDIR:-/tmp}/netboot-selftest.XXXXXX")
    keep_logs=0
fi
mkdir -p "$logroot"

image="${NETBOOT_TEST_CACHE:-/var/cache/netboot-tests}/image"
"$here/build-boot-image.sh" "$image" || exit 2

declare -A TIMES=() RESULTS=()
overall=0

run_group() { # run_group full|proxy CASE...
    local kind=$1 c i out rc=0
    shift
    [[ $# -gt 0 ]] || return 0
    local -a args=(--image "$image" --timeout "$TIMEOUT" --ready udp:67 --ready tcp:8080
        --logdir "$logroot/$kind")
    [[ $RA != 1 ]] || args+=(--ra)
    [[ $kind != proxy ]] || args+=(--site-dhcp)
    for c in "$@"; do
        for ((i = 0; i < REPEAT; i++)); do args+=(--mode "${c#proxy-}"); done
    done
    echo "selftest: $kind: ${*} (x$REPEAT)" >&2
    out="$logroot/$kind.out"
    "$here/run-e2e.sh" "${args[@]}" -- "$here/reference-server.sh" "$kind" | tee "$out" || rc=$?
    # map the qemu_boot lines back to cases, in order
    local -a lines
    mapfile -t lines < <(grep '^qemu_boot: ' "$out" || true)
    local n=0 l res el
    for c in "$@"; do
        for ((i = 0; i < REPEAT; i++)); do
            l=${lines[$n]:-}
            n=$((n + 1))
            res=$(sed -n 's/.* result=\([A-Z]*\).*/\1/p' <<<"$l")
            el=$(sed -n 's/.* elapsed=\([0-9.]*\).*/\1/p' <<<"$l")
            TIMES[$c]+="${el:-?} "
            if [[ $res == PASS ]]; then
                RESULTS[$c]=${RESULTS[$c]:-PASS}
            else
                RESULTS[$c]=FAIL
            fi
        done
    done
    if [[ $rc -ne 0 ]]; then overall=1; fi
}

full=() proxy=()
for c in "${CASES[@]}"; do
    if [[ $c == proxy-* ]]; then proxy+=("$c"); else full+=("$c"); fi
done
run_group full "${full[@]}"
run_group proxy "${proxy[@]}"

median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "-" }'; }
echo "selftest summary (RA=$RA no-ping=$REF_NO_PING opt60=$REF_OPT60; seconds from QEMU start to the PASS marker)"
for c in "${CASES[@]}"; do
    [[ -n ${RESULTS[$c]:-} ]] || {
        RESULTS[$c]=FAIL
        overall=1
    }
    printf 'selftest: %-16s %-4s median=%-5s times=%s\n' "$c" "${RESULTS[$c]}" \
        "$(median <<<"${TIMES[$c]:-}")" "${TIMES[$c]:-}"
done
if [[ $overall -ne 0 || $keep_logs == 1 ]]; then
    echo "selftest: logs in $logroot" >&2
else
    rm -rf "$logroot"
fi
exit "$overall"
