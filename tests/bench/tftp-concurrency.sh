#!/usr/bin/env bash
# TFTP under a boot storm: 100 clients fetch one 1 MiB file (about the size of ipxe.efi) at the
# same moment, from netboot's node, dnsmasq's TFTP with its default --tftp-max (50), dnsmasq
# with --tftp-max=200, and tftpd-hpa, all measured side by side in one run.
#
#   bash tests/bench/tftp-concurrency.sh [RUNS]   (as root; default 5 runs per server, medians)
#
# Clients are curl (tftp://, blksize 1468, one block per ACK as PXE firmware does). All 100
# are started first and held on a shared lock, then released together; each reports its own
# time (curl's time_total), the wall time runs from the release to the last exit. A client
# fails if curl fails (it gives up after 60 s) or its copy differs from the file.
# Every server and client runs inside one network namespace this script creates (dnsmasq's
# TFTP only listens on port 69, so its two instances take 127.0.0.1 and 127.0.0.2); traffic
# stays on that namespace's loopback. Writes the results into docs/benchmarks.md between the
# tftp-concurrency markers and prints them. Everything it starts is stopped, and the namespace
# removed, on any exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
CLIENTS=100
SIZE=$((1 << 20))
BENCH=tftp-concurrency.sh
# shellcheck source=lib.sh
source tests/bench/lib.sh
bench_need_root "it creates a network namespace"
# The peers, from Debian's packages; tftpd-hpa's own daemon on the host's port 69 is stopped,
# the benchmark runs its own copy inside the namespace.
bench_install --stop tftpd-hpa curl tftpd-hpa dnsmasq-base iproute2 util-linux
bench_build

# Each server runs in its own cpuacct cgroup, so CPU time includes the children tftpd-hpa
# forks per transfer (they are auto-reaped, so /proc's cutime never sees them).
bench_cgroup
bench_netns
ip -n "$NS" addr add 127.0.0.2/8 dev lo
bench_veth

mkdir -p "$WORK/root"
head -c "$SIZE" /dev/urandom > "$WORK/root/ipxe.efi"
chmod -R a+rX "$WORK/root"

# netboot: the file published as a files-only release, served as a first-stage program.
bench_tftp_node "$WORK/root/ipxe.efi"
ip netns exec "$NS" env RUST_LOG=warn "$BIN" node --config "$WORK/node.toml" 2>"$WORK/netboot.log" &
PIDS+=($!); cgroup netboot $!
ip netns exec "$NS" in.tftpd -L -a 127.0.0.1:16970 -s "$WORK/root" 2>"$WORK/hpa.log" &
PIDS+=($!); cgroup tftpd-hpa $!
# dnsmasq logs nothing per transfer (no --log-queries/--log-dhcp), like the node at warn.
ip netns exec "$NS" dnsmasq --keep-in-foreground --port=0 --enable-tftp --tftp-root="$WORK/root" \
    --listen-address=127.0.0.1 --bind-interfaces --log-facility=- --user=root \
    --pid-file="$WORK/dnsmasq50.pid" 2>"$WORK/dnsmasq50.log" &
PIDS+=($!); cgroup dnsmasq50 $!
ip netns exec "$NS" dnsmasq --keep-in-foreground --port=0 --enable-tftp --tftp-root="$WORK/root" \
    --listen-address=127.0.0.2 --bind-interfaces --tftp-max=200 --log-facility=- --user=root \
    --pid-file="$WORK/dnsmasq200.pid" 2>"$WORK/dnsmasq200.log" &
PIDS+=($!); cgroup dnsmasq200 $!
sleep 1
for p in "${PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "tftp-concurrency.sh: a server failed to start:" >&2; cat "$WORK"/*.log >&2; exit 1; }
done

mkdir -p "$CG/nbbench-$ID-clients"
# CPU seconds used so far by server NAME and everything it started.
# CPU seconds the whole machine has been busy (user, nice, system, irq, softirq, steal).
busy() { awk '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / 100 }' /proc/stat; }
# quiet: waits (up to 2 minutes) until the machine has been nearly idle for a second, so that
# a run does not share the cores with someone else's work (the "other load" line shows how well
# that held).
quiet() {
    local b0 b1
    for _ in $(seq 120); do
        b0=$(busy); sleep 1; b1=$(busy)
        awk -v a="$b0" -v b="$b1" 'BEGIN { exit !(b - a < 0.15) }' && return 0
    done
    echo "  (the machine is still busy after 2 minutes; measuring anyway)" >&2
}

# The storm, run inside the namespace: HOST PORT. Starts $CLIENTS curls held on a lock, releases
# them together, waits for all; leaves t/N (seconds), rc/N and out/N per client and prints the
# wall time.
cat > "$WORK/storm.sh" <<'SH'
set -u
W=$1 HOST=$2 PORT=$3 N=$4
rm -rf "$W/t" "$W/rc" "$W/out"; mkdir -p "$W/t" "$W/rc" "$W/out"
exec 9>"$W/lock"
flock -x 9
for i in $(seq "$N"); do
    ( flock -s "$W/lock" curl -s --max-time 60 --tftp-blksize 1468 -o "$W/out/$i" -w '%{time_total}\n' \
        "tftp://$HOST:$PORT/ipxe.efi" > "$W/t/$i" 2>/dev/null; echo $? > "$W/rc/$i" ) 9>&- &
done
sleep 2          # every client is forked and waiting on the lock
t0=$(date +%s.%N)
flock -u 9
wait
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
SH

# storm NAME HOST PORT: one storm against a server; prints "fails p50 p99 wall cpu other":
# other = CPU seconds the rest of the machine (not the server, not the clients) used meanwhile,
# a check that the run had the machine to itself.
storm() {
    local name=$1 host=$2 port=$3 c0 c1 k0 k1 b0 b1 wall fails=0 i
    c0=$(cpu "$name"); k0=$(cpu clients); b0=$(busy)
    # The clients join their group before entering the namespace (whose /sys has no cgroups).
    wall=$( (echo "$BASHPID" > "$CG/nbbench-$ID-clients/cgroup.procs"
        exec ip netns exec "$NS" bash "$WORK/storm.sh" "$WORK" "$host" "$port" "$CLIENTS") )
    sleep 0.3; c1=$(cpu "$name"); k1=$(cpu clients); b1=$(busy)
    : > "$WORK/times"
    for i in $(seq "$CLIENTS"); do
        if [ "$(cat "$WORK/rc/$i" 2>/dev/null)" = 0 ] && cmp -s "$WORK/out/$i" "$WORK/root/ipxe.efi"; then
            cat "$WORK/t/$i" >> "$WORK/times"
        else
            fails=$((fails + 1))
        fi
    done
    sort -n "$WORK/times" | awk -v f="$fails" -v w="$wall" -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" \
        -v o="$(awk -v c0="$c0" -v c1="$c1" -v k0="$k0" -v k1="$k1" -v b0="$b0" -v b1="$b1" 'BEGIN { o = (b1 - b0) - (c1 - c0) - (k1 - k0); print (o < 0 ? 0 : o) }')" '
        { v[NR] = $1 }
        END {
            if (NR == 0) { printf "%d - - %s %.3f %.2f\n", f, w, c, o; exit }
            p50 = v[int((NR + 1) / 2)]; i99 = int(NR * 0.99 + 0.999); if (i99 < 1) i99 = 1
            printf "%d %.3f %.3f %s %.3f %.2f\n", f, p50, v[i99], w, c, o
        }'
}

median() { bench_median -; }

SERVERS=("netboot:127.0.0.1:16969" "dnsmasq50:127.0.0.1:69" "dnsmasq200:127.0.0.2:69" "tftpd-hpa:127.0.0.1:16970")
declare -A FAIL P50 P99 WALL CPU
# Runs alternate between the servers, so a slow spell of the machine hits them alike.
for r in $(seq "$RUNS"); do
    for s in "${SERVERS[@]}"; do
        IFS=: read -r name host port <<<"$s"
        quiet
        line=$(storm "$name" "$host" "$port")
        echo "  $name run $r: fails p50 p99 wall cpu othercpu = $line" >&2
        echo "$line" >> "$WORK/runs.$name"
    done
done
for s in "${SERVERS[@]}"; do
    name=${s%%:*}
    FAIL[$name]=$(awk '{ s += $1 } END { print s }' "$WORK/runs.$name")
    P50[$name]=$(awk '{ print $2 }' "$WORK/runs.$name" | median)
    P99[$name]=$(awk '{ print $3 }' "$WORK/runs.$name" | median)
    WALL[$name]=$(awk '{ print $4 }' "$WORK/runs.$name" | median)
    CPU[$name]=$(awk '{ print $5 }' "$WORK/runs.$name" | median)
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f×", a / b }'; }
declare -A LABEL=([netboot]="netboot" [dnsmasq50]="dnsmasq (default --tftp-max=50)" [dnsmasq200]="dnsmasq --tftp-max=200" [tftpd-hpa]="tftpd-hpa")
{
    echo "<!-- tftp-concurrency:begin -->"
    echo "### TFTP: $CLIENTS clients at once, one 1 MiB file"
    echo
    echo "Command: \`bash tests/bench/tftp-concurrency.sh $RUNS\` — $(date -u +%Y-%m-%d), netboot $REV, $(nproc) cores, $(uname -r), median of $RUNS runs per server."
    echo "Each run: $CLIENTS \`curl --tftp-blksize 1468\` clients released together (one block per ACK, like PXE firmware);"
    echo "p50/p99 = per-client seconds (curl's time_total, over the clients that completed); wall = release to last exit;"
    echo "CPU = server CPU seconds per storm (cpuacct cgroup); failures = clients that failed or got wrong bytes, summed over all $RUNS runs"
    echo "($((CLIENTS * RUNS)) transfers per server). The $CLIENTS curl processes share the machine's $(nproc) cores with the server."
    echo
    echo "| server | failures | p50 s | p99 s | wall s | CPU s |"
    echo "|---|---|---|---|---|---|"
    for s in "${SERVERS[@]}"; do
        name=${s%%:*}
        echo "| ${LABEL[$name]} | ${FAIL[$name]}/$((CLIENTS * RUNS)) | ${P50[$name]} | ${P99[$name]} | ${WALL[$name]} | ${CPU[$name]} |"
    done
    echo
    cat "$WORK"/runs.* | awk -v n="$(nproc)" '{ v[++k] = $6; w[k] = $4 } END {
        if (k == 0) exit
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        printf "Other load: the rest of the machine used a median of %.2f s (max %.2f s) CPU per storm.\n\n", v[int((k + 1) / 2)], v[k]
    }'
    echo "netboot ÷ peer (times and CPU: below 1 is better for netboot):"
    echo
    echo "| peer | p50 | p99 | wall | CPU |"
    echo "|---|---|---|---|---|"
    for name in dnsmasq50 dnsmasq200 tftpd-hpa; do
        echo "| ${LABEL[$name]} | $(ratio "${P50[netboot]}" "${P50[$name]}") | $(ratio "${P99[netboot]}" "${P99[$name]}") | $(ratio "${WALL[netboot]}" "${WALL[$name]}") | $(ratio "${CPU[netboot]}" "${CPU[$name]}") |"
    done
    echo "<!-- tftp-concurrency:end -->"
} > "$WORK/section.md"
cat "$WORK/section.md"
bench_put_section tftp-concurrency "$WORK/section.md"
