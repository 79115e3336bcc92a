#!/usr/bin/env bash
# HTTP throughput, CPU and memory: netboot's node vs nginx (sendfile on), measured side by side
# in one run on one 1 GiB file, with 1, 8 and 200 concurrent clients fetching the whole file and
# 8 and 200 clients fetching random 1 MiB ranges of it. Also the node's footprint: idle RSS,
# time from start to the first HTTP answer, and RSS/CPU under the 200-client load.
#
#   bash tests/bench/http.sh [RUNS]        (as root; default 5 runs per case, medians reported)
#   (BENCH_SECONDS=N sets the seconds per load case, default 10)
#
# The load client is wrk (keep-alive connections, each sending its next request as soon as
# the previous answer ends). Every case runs for a fixed time; throughput is the bytes wrk
# read in that time divided by it, counted as they arrive, so a 1 GiB answer still in flight
# at the end counts for what it delivered. Both servers log no per-request line (the node at
# RUST_LOG=warn, nginx with access_log off).
# Every server and client runs inside one network namespace this script creates; traffic stays
# on that namespace's loopback. nginx runs from its own config, pid and log files in the work
# directory, never as the system service. Writes the results into docs/benchmarks.md between
# the http and the footprint markers and prints them. Everything it starts is stopped, and the
# namespace and files removed, on any exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
DUR=${BENCH_SECONDS:-10}    # seconds per load case
SIZE_MIB=1024
BENCH=http.sh
# shellcheck source=lib.sh
source tests/bench/lib.sh
bench_need_root "it creates a network namespace"
# The peers, from Debian's packages; the system nginx the package starts is stopped, the
# benchmark runs its own nginx inside the namespace.
bench_install --stop nginx curl wrk nginx-light iproute2
bench_build

# Each server (and the client) runs in its own cpuacct cgroup: CPU time covers all of nginx's
# worker processes and all of the node's threads.
bench_cgroup
bench_netns

mkdir -p "$WORK/root" "$WORK/nginx/tmp"
head -c "$((SIZE_MIB << 20))" /dev/urandom > "$WORK/root/big.bin"
echo hello > "$WORK/root/small.txt"
chmod -R a+rX "$WORK/root"

# netboot: the file published as a files-only release; HTTP only (no DHCP, no TFTP).
key=$("$BIN" keygen --out "$WORK/k" 2>/dev/null)
bench_node_toml "$WORK/node.toml" "$key"
cat >> "$WORK/node.toml" <<TOML
[tftp]
enabled = false
[http]
listen = "127.0.0.1:16980"
# wrk's 200 connections all come from 127.0.0.1: lift the per-client cap meant for real hosts.
max_connections = 1000
max_connections_per_client = 1000
TOML
"$BIN" publish --config "$WORK/node.toml" --key "$WORK/k" --name bench --file "$WORK/root/big.bin" >/dev/null 2>&1
NB_URL=http://127.0.0.1:16980/images/bench/big.bin
NB_SMALL=http://127.0.0.1:16980/boot.ipxe

# nginx: one worker per core (Debian's default), sendfile, keep-alive without a request cap.
bench_nginx_conf "$WORK/nginx" 127.0.0.1:16981 "$WORK/root" "tcp_nodelay on" "keepalive_requests 1000000"
NG_URL=http://127.0.0.1:16981/big.bin
NG_SMALL=http://127.0.0.1:16981/small.txt

# wrk's own accounting group (the servers get theirs when they start).
mkdir -p "$CG/nbbench-$ID-client"
# quiet: waits (up to 2 minutes) until the machine has been nearly idle for a second (the
# "other load" line shows how well that held).
quiet() { bench_quiet 1 0.15 120; }
# rss NAME: "VmRSS RssAnon" in kB, summed over the group's processes (nginx: master + workers).
rss() {
    local files=() p
    while read -r p; do files+=("/proc/$p/status"); done < "$CG/nbbench-$ID-$1/cgroup.procs"
    [ ${#files[@]} -gt 0 ] || { echo "0 0"; return; }
    awk '/^VmRSS:/ { r += $2 } /^RssAnon:/ { a += $2 } END { print r + 0, a + 0 }' "${files[@]}" 2>/dev/null || echo "0 0"
}
# start NAME: starts server NAME in the namespace, in its cgroup; sets SERVER_PID.
start() {
    case $1 in
        netboot) ip netns exec "$NS" env RUST_LOG=warn "$BIN" node --config "$WORK/node.toml" 2>>"$WORK/netboot.log" & ;;
        nginx) ip netns exec "$NS" nginx -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>>"$WORK/nginx/stderr.log" & ;;
    esac
    SERVER_PID=$!; PIDS+=("$SERVER_PID"); cgroup "$1" "$SERVER_PID"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; sleep 0.3; }
# until_up URL: polls (one curl after another, no sleep) until URL answers 200; prints the tries.
until_up() {
    local n=0
    until in_ns curl -sf -o /dev/null --max-time 1 "$1"; do
        n=$((n + 1)); [ "$n" -lt 5000 ] || { echo "http.sh: $1 never answered:" >&2; cat "$WORK"/*.log "$WORK"/nginx/*.log >&2; exit 1; }
    done
}
ms_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
median() { bench_median -; }

# --- Footprint: fresh starts ---------------------------------------------------------------
# Each run starts a server, times start -> first 200 answer (netboot: the /boot.ipxe script;
# nginx: a small file), waits 2 s and reads its idle RSS, measures the CPU it uses in the next
# 10 s of idling, then times a first 1-byte range of the
# 1 GiB file (for the node this includes the one-time BLAKE3 check of a file not yet verified
# since start), and stops it.
declare -A UP IDLE IDLEANON IDLECPU FIRSTBIG
for name in netboot nginx; do
    : > "$WORK/fp.$name"
    for _ in $(seq "$RUNS"); do
        quiet
        t0=$(date +%s.%N)
        start "$name"
        if [ "$name" = netboot ]; then small=$NB_SMALL big=$NB_URL; else small=$NG_SMALL big=$NG_URL; fi
        until_up "$small"
        up=$(ms_since "$t0")
        sleep 2
        read -r r a <<<"$(rss "$name")"
        c0=$(cpu "$name"); sleep 10; c1=$(cpu "$name")
        idle_ms=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
        t1=$(date +%s.%N)
        in_ns curl -sf -o /dev/null -r 0-0 "$big"
        first=$(ms_since "$t1")
        echo "$up $r $a $first $idle_ms" >> "$WORK/fp.$name"
        echo "  $name start: first answer $up ms, idle RSS $r kB (anon $a kB), idle CPU $idle_ms ms in 10 s, first 1 GiB-file byte $first ms" >&2
        stop "$SERVER_PID"
    done
    UP[$name]=$(awk '{ print $1 }' "$WORK/fp.$name" | median)
    IDLE[$name]=$(awk '{ print $2 }' "$WORK/fp.$name" | median)
    IDLEANON[$name]=$(awk '{ print $3 }' "$WORK/fp.$name" | median)
    FIRSTBIG[$name]=$(awk '{ print $4 }' "$WORK/fp.$name" | median)
    IDLECPU[$name]=$(awk '{ print $5 }' "$WORK/fp.$name" | median)
done

# --- Load ----------------------------------------------------------------------------------
start netboot; NETBOOT_PID=$SERVER_PID
start nginx; NGINX_PID=$SERVER_PID
until_up "$NB_SMALL"; until_up "$NG_SMALL"
# Correctness and warm-up: each server's whole file and one range must match the original.
for u in "$NB_URL" "$NG_URL"; do
    in_ns curl -sf -o "$WORK/check.bin" "$u"
    cmp -s "$WORK/check.bin" "$WORK/root/big.bin" || { echo "http.sh: $u served wrong bytes" >&2; exit 1; }
    in_ns curl -sf -o "$WORK/check.bin" -r 123456789-124505364 "$u"
    cmp -s "$WORK/check.bin" <(tail -c +123456790 "$WORK/root/big.bin" | head -c 1048576) \
        || { echo "http.sh: $u served a wrong range" >&2; exit 1; }
done
rm -f "$WORK/check.bin"

# wrk scripts: "done" prints one machine-readable line; range.lua asks each request for a
# random 1 MiB range (any byte offset) of the file.
cat > "$WORK/whole.lua" <<'LUA'
done = function(s, latency, requests)
    local e = s.errors
    io.write(string.format("RESULT %d %d %d %d %d %d\n", s.bytes, s.requests, s.duration,
        e.connect + e.read + e.write + e.status, latency:percentile(50), latency:percentile(99)))
end
LUA
cat > "$WORK/range.lua" <<LUA
local size, chunk = $((SIZE_MIB << 20)), 1048576
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("id", counter) end
init = function(args) math.randomseed(os.time() * 100 + (id or 0)) end
request = function()
    local s = math.random(0, size - chunk)
    return wrk.format(nil, nil, { ["Range"] = "bytes=" .. s .. "-" .. (s + chunk - 1) })
end
LUA
cat "$WORK/whole.lua" >> "$WORK/range.lua"

# sampler NAME OUT: until killed, writes the peak "VmRSS RssAnon" (kB) of group NAME to OUT.
sampler() {
    local pr=0 pa=0 r a
    while :; do
        read -r r a <<<"$(rss "$1")"
        [ "$r" -gt "$pr" ] && pr=$r
        [ "$a" -gt "$pa" ] && pa=$a
        echo "$pr $pa" > "$2"
        sleep 0.1
    done
}

# load NAME URL CONNS SCRIPT: one wrk run; prints
# "MB/s req/s p50_ms p99_ms errors server_cpu client_cpu peak_rss_kB peak_anon_kB other_cpu",
# other_cpu = CPU seconds the rest of the machine used meanwhile (another server idling, other
# users of the machine): a check that the run had the machine to itself.
load() {
    local name=$1 url=$2 conns=$3 script=$4 threads=2 c0 c1 k0 k1 b0 b1 spid out
    [ "$conns" -lt 2 ] && threads=1
    c0=$(cpu "$name"); k0=$(cpu client); b0=$(busy)
    rm -f "$WORK/peak"
    sampler "$name" "$WORK/peak" & spid=$!
    # wrk joins the client group before it enters the namespace (whose /sys has no cgroups).
    out=$( (echo "$BASHPID" > "$CG/nbbench-$ID-client/cgroup.procs"
        exec ip netns exec "$NS" wrk -t "$threads" -c "$conns" -d "${DUR}s" --timeout 60s -s "$WORK/$script.lua" "$url") \
        | grep '^RESULT' || true)
    kill "$spid"; wait "$spid" 2>/dev/null || true
    sleep 0.3
    c1=$(cpu "$name"); k1=$(cpu client); b1=$(busy)
    [ -n "$out" ] || { echo "- - - - - - - - - -"; return; }
    awk -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" -v k="$(awk -v a="$k0" -v b="$k1" 'BEGIN { print b - a }')" \
        -v peak="$(cat "$WORK/peak" 2>/dev/null || echo "0 0")" -v b="$(awk -v a="$b0" -v b="$b1" 'BEGIN { print b - a }')" '{
        sec = $4 / 1e6
        split(peak, p, " ")
        o = b - c - k; if (o < 0) o = 0
        printf "%.1f %.1f %.2f %.2f %d %.3f %.3f %d %d %.2f\n", $2 / sec / 1e6, $3 / sec, $6 / 1000, $7 / 1000, $5, c, k, p[1], p[2], o
    }' <<<"$out"
}

CASES=("whole:1" "whole:8" "whole:200" "range:8" "range:200")
for r in $(seq "$RUNS"); do
    for case in "${CASES[@]}"; do
        IFS=: read -r script conns <<<"$case"
        for name in netboot nginx; do
            if [ "$name" = netboot ]; then url=$NB_URL; else url=$NG_URL; fi
            quiet
            line=$(load "$name" "$url" "$conns" "$script")
            echo "$line" >> "$WORK/load.$name.$script.$conns"
            echo "  run $r $script x$conns $name: MB/s req/s p50ms p99ms errors cpu clientcpu rsskB anonkB othercpu = $line" >&2
        done
    done
done
HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$NETBOOT_PID/status")
for name in netboot nginx; do
    kill -0 "$([ $name = netboot ] && echo "$NETBOOT_PID" || echo "$NGINX_PID")" 2>/dev/null \
        || { echo "http.sh: $name died during the run" >&2; cat "$WORK"/*.log "$WORK"/nginx/*.log >&2; exit 1; }
done

# col NAME SCRIPT CONNS FIELD: median over runs of one field; peak: maximum instead.
col() { awk -v f="$4" '{ print $f }' "$WORK/load.$1.$2.$3" | median; }
peak() { awk -v f="$4" '$f != "-" && $f > m { m = $f } END { print m + 0 }' "$WORK/load.$1.$2.$3"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f×", a / b }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
per_gb() { awk -v c="$1" -v m="$2" -v d="$DUR" 'BEGIN { if (c == "-" || m == "-" || m == 0) print "-"; else printf "%.2f", c / (m * d / 1000) }'; }
label() { case $1 in whole) echo "whole file, $2 client$([ "$2" = 1 ] || echo s)" ;; range) echo "random 1 MiB ranges, $2 clients" ;; esac; }
NOW=$(date -u +%Y-%m-%d)
CMD="bash tests/bench/http.sh $RUNS"
[ "$DUR" = 10 ] || CMD="BENCH_SECONDS=$DUR $CMD"
MACHINE="netboot $REV, $(nproc) cores, $(uname -r)"
met() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { if (v == "-") print "no data"; else if ((dir == "ge" && v >= t) || (dir == "le" && v <= t)) print "met"; else print "not met" }'; }
{
    echo "<!-- http:begin -->"
    echo "### HTTP: one ${SIZE_MIB} MiB file over loopback, netboot vs nginx"
    echo
    echo "Command: \`$CMD\` — $NOW, $MACHINE, median of $RUNS runs of ${DUR} s per case."
    echo "Client: wrk 4.1 (2 threads; 1 for one client), keep-alive, the next request as soon as an answer ends;"
    echo "MB/s = bytes read in the ${DUR} s over ${DUR} s (10^6 bytes/s; a whole-file answer still in flight counts for what it"
    echo "delivered). nginx 1.22: \`sendfile on\`, \`worker_processes auto\`, access log off; the node at RUST_LOG=warn."
    echo "CPU = server CPU seconds per ${DUR} s run (cpuacct cgroup: all nginx processes, all node threads), and per GB served."
    echo "wrk shares the machine's $(nproc) cores with the server: the client CPU column is what wrk itself used. On loopback"
    echo "the kernel charges delivery to whichever side triggers it (wrk's ACKs push out data nginx queued with sendfile),"
    echo "so the server/client split of the CPU is indicative only."
    echo
    echo "| case | netboot MB/s | nginx MB/s | netboot ÷ nginx | CPU s netboot / nginx | CPU s per GB netboot / nginx | wrk CPU s with netboot / nginx | errors netboot / nginx |"
    echo "|---|---|---|---|---|---|---|---|"
    for case in "${CASES[@]}"; do
        IFS=: read -r script conns <<<"$case"
        n=$(col netboot "$script" "$conns" 1) g=$(col nginx "$script" "$conns" 1)
        nc=$(col netboot "$script" "$conns" 6) gc=$(col nginx "$script" "$conns" 6)
        echo "| $(label "$script" "$conns") | $n | $g | $(ratio "$n" "$g") | $nc / $gc | $(per_gb "$nc" "$n") / $(per_gb "$gc" "$g") | $(col netboot "$script" "$conns" 7) / $(col nginx "$script" "$conns" 7) | $(col netboot "$script" "$conns" 5) / $(col nginx "$script" "$conns" 5) |"
    done
    echo
    cat "$WORK"/load.* | awk -v d="$DUR" -v n="$(nproc)" '$10 != "-" { v[++k] = $10 } END {
        if (k == 0) exit
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        printf "Other load: the rest of the machine used a median of %.2f s (max %.2f s) of the %d CPU-seconds of each run.\n", v[int((k + 1) / 2)], v[k], n * d
    }'
    echo
    echo "Range requests per second and wrk's latency per request (ms):"
    echo
    echo "| case | netboot req/s | nginx req/s | p50 ms netboot / nginx | p99 ms netboot / nginx |"
    echo "|---|---|---|---|---|"
    for conns in 8 200; do
        echo "| $(label range "$conns") | $(col netboot range "$conns" 2) | $(col nginx range "$conns" 2) | $(col netboot range "$conns" 3) / $(col nginx range "$conns" 3) | $(col netboot range "$conns" 4) / $(col nginx range "$conns" 4) |"
    done
    echo
    echo "Peak resident memory during the 200-client runs (sampled every 0.1 s; MiB; nginx: master + workers):"
    echo
    echo "| case | netboot VmRSS | netboot RssAnon | nginx VmRSS |"
    echo "|---|---|---|---|"
    for script in whole range; do
        echo "| $(label "$script" 200) | $(mb "$(peak netboot "$script" 200 8)") | $(mb "$(peak netboot "$script" 200 9)") | $(mb "$(peak nginx "$script" 200 8)") |"
    done
    echo
    echo "Issue 5 targets: HTTP ≥ 1.0× nginx throughput —"
    for case in "${CASES[@]}"; do
        IFS=: read -r script conns <<<"$case"
        v=$(awk -v a="$(col netboot "$script" "$conns" 1)" -v b="$(col nginx "$script" "$conns" 1)" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.4f", a / b }')
        echo "$(label "$script" "$conns"): $(met "$v" 1.0 ge);"
    done
    w=$(peak netboot whole 200 8) ra=$(peak netboot range 200 8)
    echo "bounded node memory at 200 clients: peak VmRSS $(mb "$w") MiB (whole file) / $(mb "$ra") MiB (ranges) —"
    echo "see the footprint section for the 150 MB bound."
    echo "<!-- http:end -->"
} > "$WORK/http.md"
{
    echo "<!-- footprint:begin -->"
    echo "### Node footprint"
    echo
    echo "Command: \`$CMD\` (the same run as the HTTP section) — $NOW, $MACHINE;"
    echo "medians of $RUNS fresh starts, and of the $RUNS runs of each 200-client case. The node serves HTTP only"
    echo "(DHCP off, TFTP off) from a store holding one release with the ${SIZE_MIB} MiB file. Start → first answer: from"
    echo "launching the process to the first 200 answer to a poll (curl after curl, no pause; netboot: \`/boot.ipxe\`,"
    echo "nginx: a 6-byte file). Idle RSS: 2 s after that answer. First 1-byte range of the 1 GiB file after start: for the"
    echo "node this includes the one-time BLAKE3 check of a file not yet verified since start."
    echo
    echo "| measure | netboot | nginx (master + workers) | target (netboot) |"
    echo "|---|---|---|---|"
    echo "| start → first HTTP answer | ${UP[netboot]} ms | ${UP[nginx]} ms | |"
    echo "| idle VmRSS | $(mb "${IDLE[netboot]}") MiB | $(mb "${IDLE[nginx]}") MiB | ≤ 30 MB: $(met "$(awk -v k="${IDLE[netboot]}" 'BEGIN { print k * 1024 / 1e6 }')" 30 le) |"
    echo "| idle RssAnon | $(mb "${IDLEANON[netboot]}") MiB | $(mb "${IDLEANON[nginx]}") MiB | |"
    echo "| idle CPU, 10 s from 2 s after the first answer | ${IDLECPU[netboot]} ms | ${IDLECPU[nginx]} ms | |"
    echo "| first byte of the 1 GiB file after start | ${FIRSTBIG[netboot]} ms | ${FIRSTBIG[nginx]} ms | |"
    for script in whole range; do
        p=$(peak netboot "$script" 200 8)
        echo "| peak VmRSS, $(label "$script" 200) (max over runs) | $(mb "$p") MiB | $(mb "$(peak nginx "$script" 200 8)") MiB | ≤ 150 MB: $(met "$(awk -v k="$p" 'BEGIN { print k * 1024 / 1e6 }')" 150 le) |"
        echo "| peak RssAnon, $(label "$script" 200) (max over runs) | $(mb "$(peak netboot "$script" 200 9)") MiB | $(mb "$(peak nginx "$script" 200 9)") MiB | |"
        echo "| CPU s per ${DUR} s, $(label "$script" 200) | $(col netboot "$script" 200 6) | $(col nginx "$script" 200 6) | |"
    done
    echo "| VmHWM at the end of the run (lifetime peak) | $(mb "$HWM") MiB | | |"
    echo
    echo "VmRSS counts mapped file pages as well as the process's own memory (RssAnon); the node's"
    echo "lifetime VmHWM includes the ${SIZE_MIB} MiB file while its one-time check maps it (page cache shared with"
    echo "every other reader, released when the check ends), which is why the sampled peaks are quoted for the load."
    echo "<!-- footprint:end -->"
} > "$WORK/footprint.md"
cat "$WORK/http.md" "$WORK/footprint.md"

bench_put_section http "$WORK/http.md"
bench_put_section footprint "$WORK/footprint.md"
