#!/usr/bin/env bash
# run-qemu.sh — boot the PXE client VM in an existing lab and wait for its verdict.
#
# Usage: tests/pxe/run-qemu.sh MODE SERIAL_LOG [TIMEOUT_SECONDS]
#   MODE      bios | uefi-ipxe | uefi-pxe | uefi-sb   (see qemu_boot in lab.sh)
#   The lab comes from LAB_ENV=/path/to/lab.env (written by `tests/pxe/lab.sh up`), or from
#   the LAB_* variables already in the environment (exported by lab_up in a parent script).
#   Optional env: LAB_NIC, LAB_QEMU_MEM, LAB_QEMU_EXTRA, LAB_OVMF_CODE, LAB_OVMF_VARS.
#
# stdout: "qemu_boot: mode=MODE result=PASS|FAIL|TIMEOUT|EXITED elapsed=S.S initramfs=S.S log=LOG"
# stderr: on failure, the tail of the serial log.
# Exit:   0 PASS, 1 FAIL marker (NETBOOT-E2E: FAIL, Kernel panic, No bootable device, PXE-E..,
#         No more network devices, UEFI Interactive Shell, netboot: booting … failed,
#         netboot: nothing to boot, a "grub> " prompt, No bootable option or device was
#         found), 2 timeout,
#         3 QEMU exited without a verdict, 4 usage error / missing prerequisite.
# QEMU is killed when this script exits or is signalled; the lab itself is left up.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lab.sh
source "$here/lab.sh"

if [[ $# -lt 2 || $# -gt 3 ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 4
fi
if [[ -n ${LAB_ENV:-} ]]; then
    lab_load_env "$LAB_ENV" || exit 4
fi

QEMU_BOOT_PID=""
# shellcheck disable=SC2317 # called from traps
stop_qemu() { if [[ -n ${QEMU_BOOT_PID:-} ]]; then lab_stop "$QEMU_BOOT_PID"; fi; }
trap stop_qemu EXIT
trap 'stop_qemu; trap - EXIT; exit 130' INT
trap 'stop_qemu; trap - EXIT; exit 143' TERM

rc=0
qemu_boot "$1" "$2" "${3:-180}" || rc=$?
exit "$rc"
