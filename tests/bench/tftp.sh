#!/usr/bin/env bash
# TFTP throughput and CPU: netboot's node vs tftpd-hpa vs dnsmasq's TFTP, measured side by
# side in one run, one 100 MiB file, curl (blksize 1468, 8192) and atftp (windowsize 16, 64).
#
#   bash tests/bench/tftp.sh [RUNS]        (as root; default 5 runs per case, median reported)
#
# Every server and client runs inside one network namespace this script creates (dnsmasq's
# TFTP only listens on port 69, which the namespace gives it to itself); traffic stays on that
# namespace's loopback. Writes the results into docs/benchmarks.md between the TFTP markers and
# prints them. Everything it starts is stopped, and the namespace removed, on any exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
SIZE_MIB=100
BENCH=tftp.sh
# shellcheck source=lib.sh
source tests/bench/lib.sh
bench_need_root "it creates a network namespace"
# The peers, from Debian's packages; tftpd-hpa's own daemon on the host's port 69 is stopped,
# the benchmark runs its own copy inside the namespace.
bench_install --stop tftpd-hpa curl atftp tftpd-hpa dnsmasq-base iproute2
bench_build

# Each server runs in its own cpuacct cgroup, so CPU time includes the children tftpd-hpa
# forks per transfer (they are auto-reaped, so /proc's cutime never sees them).
bench_cgroup
bench_netns
bench_veth

mkdir -p "$WORK/root"
head -c "$((SIZE_MIB << 20))" /dev/urandom > "$WORK/root/big.bin"
chmod -R a+rX "$WORK/root"

# netboot: the file published as a files-only release, served as a first-stage program.
bench_tftp_node "$WORK/root/big.bin"
ip netns exec "$NS" env RUST_LOG=warn "$BIN" node --config "$WORK/node.toml" 2>"$WORK/netboot.log" &
PIDS+=($!); NETBOOT_PID=$!; cgroup netboot $!
ip netns exec "$NS" in.tftpd -L -a 127.0.0.1:16970 -s "$WORK/root" 2>"$WORK/hpa.log" &
PIDS+=($!); HPA_PID=$!; cgroup tftpd-hpa $!
ip netns exec "$NS" dnsmasq --keep-in-foreground --port=0 --enable-tftp --tftp-root="$WORK/root" \
    --listen-address=127.0.0.1 --bind-interfaces --tftp-max=200 --log-facility=- --user=root 2>"$WORK/dnsmasq.log" &
PIDS+=($!); DNSMASQ_PID=$!; cgroup dnsmasq $!
sleep 1
for p in $NETBOOT_PID $HPA_PID $DNSMASQ_PID; do
    kill -0 "$p" 2>/dev/null || { echo "tftp.sh: a server failed to start:" >&2; cat "$WORK"/*.log >&2; exit 1; }
done

# CPU seconds used so far by server NAME and everything it started.

# one PORT NAME CLIENT ARGS...: prints "seconds cpu_seconds", or "fail".
one() {
    local port=$1 pid=$2 client=$3; shift 3
    rm -f "$WORK/out.bin"
    local c0 t0 t1 c1 rc=0
    c0=$(cpu "$pid"); t0=$(date +%s.%N)
    case $client in
        curl) in_ns timeout 120 curl -s "$@" -o "$WORK/out.bin" "tftp://127.0.0.1:$port/big.bin" || rc=$? ;;
        atftp) in_ns timeout 120 atftp "$@" -g -r big.bin -l "$WORK/out.bin" 127.0.0.1 "$port" >/dev/null 2>&1 || rc=$? ;;
    esac
    t1=$(date +%s.%N); sleep 0.2; c1=$(cpu "$pid")
    if [ "$rc" -ne 0 ] || ! cmp -s "$WORK/out.bin" "$WORK/root/big.bin"; then echo fail; return; fi
    awk -v a="$t0" -v b="$t1" -v c="$c0" -v d="$c1" 'BEGIN { printf "%.3f %.3f\n", b - a, d - c }'
}


declare -A MBS CPU
CASES=("curl --tftp-blksize 1468" "curl --tftp-blksize 8192" "atftp --option blksize_1468 --option windowsize_16" "atftp --option blksize_1468 --option windowsize_64")
SERVERS=("netboot:16969:netboot" "tftpd-hpa:16970:tftpd-hpa" "dnsmasq:69:dnsmasq")
for case in "${CASES[@]}"; do
    read -r -a argv <<<"$case"
    client=${argv[0]}
    args=()
    for a in "${argv[@]:1}"; do args+=("${a//_/ }"); done
    for s in "${SERVERS[@]}"; do
        IFS=: read -r name port pid <<<"$s"
        times=() cpus=()
        for _ in $(seq "$RUNS"); do
            r=$(one "$port" "$pid" "$client" "${args[@]}")
            [ "$r" = fail ] && continue
            times+=("${r% *}"); cpus+=("${r#* }")
        done
        t=$(printf '%s\n' "${times[@]:-}" | grep . | median)
        c=$(printf '%s\n' "${cpus[@]:-}" | grep . | median)
        if [ "$t" = fail ]; then MBS[$case,$name]=fail; CPU[$case,$name]=-; else
            MBS[$case,$name]=$(awk -v s="$t" -v m="$SIZE_MIB" 'BEGIN { printf "%.1f", m * 1.048576 / s }')
            CPU[$case,$name]=$c
        fi
        echo "  $case / $name: ${MBS[$case,$name]} MB/s, server CPU ${CPU[$case,$name]} s" >&2
    done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "fail" || b == "fail" || b == 0) print "-"; else printf "%.2f×", a / b }'; }
{
    echo "<!-- tftp:begin -->"
    echo "### TFTP: one ${SIZE_MIB} MiB file over loopback"
    echo
    echo "Command: \`bash tests/bench/tftp.sh $RUNS\` — $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), median of $RUNS runs per case."
    echo "MB/s (10^6 bytes/s); ratio = netboot ÷ tftpd-hpa; CPU = server CPU seconds per transfer."
    echo
    echo "| client, options | netboot MB/s | tftpd-hpa MB/s | dnsmasq MB/s | netboot ÷ tftpd-hpa | CPU s netboot / tftpd-hpa / dnsmasq |"
    echo "|---|---|---|---|---|---|"
    for case in "${CASES[@]}"; do
        n=${MBS[$case,netboot]} h=${MBS[$case,tftpd-hpa]} d=${MBS[$case,dnsmasq]}
        echo "| \`${case//_/ }\` | $n | $h | $d | $(ratio "$n" "$h") | ${CPU[$case,netboot]} / ${CPU[$case,tftpd-hpa]} / ${CPU[$case,dnsmasq]} |"
    done
    echo
    echo "tftpd-hpa and dnsmasq have no windowsize (RFC 7440): they answer the atftp rows one block per ACK."
    echo "<!-- tftp:end -->"
} > "$WORK/section.md"
cat "$WORK/section.md"
bench_put_section tftp "$WORK/section.md"
