#!/usr/bin/env bash
# Fleet distribution: one release to N sites (default 8) over emulated WAN links, netboot's
# fleet sync vs every site downloading it from the origin over HTTP at the same time (the star
# of today).
#
#   bash tests/bench/fleet.sh [RUNS]       (as root; default 3 runs of each, medians reported)
#   FLEET_SITES=N         number of sites besides the origin (default 8; 2-62, wan.sh's 64 links)
#   FLEET_SIZE_MIB=N      release size (default 1024)
#   FLEET_ORIGIN_RTT=MS   round trip of the origin's link to the core (default 45)
#   FLEET_RATE_MBIT=R     rate of every link (default 100)
#   FLEET_STAR=0          skip the HTTP star runs
#   FLEET_STAR_RUNS=N     runs of the star (default RUNS; its time is set by the origin's link)
#   FLEET_STAR_SIZE_MIB=N the star downloads a file of this size instead of the release's (default:
#                         the release's). The star is bound by the origin's uplink (N × size ÷
#                         rate), so a smaller file measures the same rate in less time; the
#                         section shows the measured row and, labelled as such, that row scaled
#                         to the release's size.
#   FLEET_UPLOAD_SLOTS=N  the nodes' [fleet] upload_slots (default: the node's default, 1)
#   FLEET_DOC=0           print the section but do not write docs/benchmarks.md
#   FLEET_SECTION=NAME    the docs/benchmarks.md section it writes (default fleet)
#   FLEET_QUIET=0         do not wait for an idle machine before each run
#   FLEET_KEEP=1          keep the work dir (logs, statuses, per-site done times) in /var/tmp
#   NETBOOT_BIN=PATH      measure that node binary instead of building this tree's (a before/after)
#   WAN_DELAY_BIN=PATH    use that link delayer instead of building this tree's
#
# Topology (tests/wan/wan.sh; this kernel has no netem): a `core` router namespace and N+1
# site namespaces, the origin and s1..sN, each joined to the core by one link of 100 Mbit/s
# (tbf on both ends) with its own round trip (NFQUEUE delayer on both receiving ends): s1..sN
# spread evenly over 10..80 ms (10 + 70·(i-1)/(N-1), rounded: 10, 20, ..., 80 for 8 sites),
# the origin FLEET_ORIGIN_RTT. Every site routes via the core, so the
# round trip between two sites is the sum of their links' and every site has its own
# 100 Mbit/s up- and downlink. Nothing is configured in the root namespace; all traffic stays
# in the namespaces this script creates.
#
# netboot: the release build, N+1 nodes, each with every other node as a [fleet] peer at its
# link address, [dhcp] off, [tftp] off, HTTP on 127.0.0.1 inside its namespace (status only),
# fresh data dirs for every run. Time = from the start of `netboot publish --to` (run in the
# origin's namespace against the origin's node over loopback) until the last site has
# committed the release (the timestamp of its node's "accepted" log line).
# The star: nginx (Debian's, sendfile) in the origin's namespace serves the same file on the
# origin's link address; all N sites start `curl` at once; time = until the last one ends.
# Origin bytes = bytes the origin's link interface transmitted during the run (wire bytes:
# payload plus QUIC/TCP/IP headers and retransmissions; for netboot also the payload the node
# reports as uploaded). Lower bound = size ÷ 100 Mbit/s (one site's downlink).
# Up to 8 sites the section shows who sent what to whom as a matrix; beyond, per site its
# finish time and its largest sources.
#
# Writes the results into docs/benchmarks.md between the fleet markers and prints them.
# Everything it starts is stopped and the lab removed (wan.sh down) on any exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
SIZE_MIB=${FLEET_SIZE_MIB:-1024}
ORIGIN_RTT=${FLEET_ORIGIN_RTT:-45}
RATE_MBIT=${FLEET_RATE_MBIT:-100}
SECTION=${FLEET_SECTION:-fleet}
N=${FLEET_SITES:-8}
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -ge 2 ] && [ "$N" -le 62 ] || { echo "fleet.sh: FLEET_SITES='$N': want 2..62 (wan.sh makes at most 64 links)" >&2; exit 2; }
STAR_SIZE_MIB=${FLEET_STAR_SIZE_MIB:-${FLEET_SIZE_MIB:-1024}}
SITES=() SITE_RTTS=()
for i in $(seq "$N"); do
    SITES+=("s$i")
    SITE_RTTS+=("$(awk -v i="$i" -v n="$N" 'BEGIN { printf "%d", 10 + 70 * (i - 1) / (n - 1) + 0.5 }')")
done
# The sites the emulation check pings: the first, the middle (s4 of 8) and the last.
MID=s$((N / 2))
LAST=s$N
# How the texts name the number of nodes (the origin and the sites).
NODES=$((N + 1)); [ "$NODES" != 9 ] || NODES=nine
FLEET_PORT=7311
STATUS_PORT=8080
NGINX_PORT=8081
BENCH=fleet.sh
# shellcheck source=lib.sh
source tests/bench/lib.sh
bench_need_root "it creates network namespaces"
# The peers and tools, from Debian's packages; the system nginx the package starts is stopped,
# the benchmark runs its own nginx inside the origin's namespace.
bench_install --stop nginx curl jq nginx-light iproute2 iptables iputils-ping util-linux procps
bench_build
# WAN_DELAY_BIN=PATH: a delayer built before (a before/after of the node alone, while the
# tree is being edited); by default the one of this tree, built.
if [ -z "${WAN_DELAY_BIN:-}" ]; then
    cargo build --release --locked -q -p netboot-tests --bin wan_delay
    export WAN_DELAY_BIN="$PWD/target/release/wan_delay"
fi
[ -x "$WAN_DELAY_BIN" ] || bench_die "WAN_DELAY_BIN=$WAN_DELAY_BIN is not an executable"
WAN=tests/wan/wan.sh

ID=$(bench_id)
# Release data on disk (9 copies of the release per run do not belong in RAM).
WORK=$(mktemp -d /var/tmp/netboot-fleet.XXXXXX)
chmod 755 "$WORK"
bench_cgroup
WAN_ENV=
NODE_PIDS=()
NGINX_PID=
log() { echo "fleet.sh: $*" >&2; }
cleanup() {
    set +e
    for p in "${NODE_PIDS[@]}" $NGINX_PID; do kill "$p" 2>/dev/null; done
    for p in "${NODE_PIDS[@]}" $NGINX_PID; do wait "$p" 2>/dev/null; done
    [ -n "$WAN_ENV" ] && "$WAN" down "$WAN_ENV" >/dev/null 2>&1
    sleep 0.3
    for g in "$CG"/nbfleet-"$ID"-*; do [ -d "$g" ] && rmdir "$g" 2>/dev/null; done
    [ "${FLEET_KEEP:-0}" = 1 ] && { log "kept $WORK"; return; }
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the lab ------------------------------------------------------------------------------
bench_core_lab
# The delayers (started by wan.sh) get their own accounting group.
mkdir -p "$CG/nbfleet-$ID-delay" "$CG/nbfleet-$ID-nodes" "$CG/nbfleet-$ID-nginx"
awk '{ print $1 }' "$(dirname "$WAN_ENV")/delayers" | while read -r p; do
    echo "$p" > "$CG/nbfleet-$ID-delay/cgroup.procs"
done
cpu() { awk '{ printf "%.2f", $1 / 1e9 }' "$CG/nbfleet-$ID-$1/cpuacct.usage"; }
# quiet: waits (up to 3 minutes) until the machine has been nearly idle for 2 s, so a run
# does not share the cores with someone else's work.
quiet() { [ "${FLEET_QUIET:-1}" = 1 ] || return 0; bench_quiet 2 0.3 90; }
txbytes() { in_ns origin cat "/sys/class/net/${IFACE[origin]}/statistics/tx_bytes"; }
now() { date +%s.%N; }

# ---- the file, nginx, and a check of the emulation ----------------------------------------
mkdir -p "$WORK/www"
SIZE=$((SIZE_MIB << 20))
newfile() { head -c "$SIZE" /dev/urandom > "$WORK/www/big.bin"; chmod 644 "$WORK/www/big.bin"; }
newfile
# The star's file: the release itself, or one of FLEET_STAR_SIZE_MIB (made once; the star is
# plain HTTP, its content does not matter).
STAR_SIZE=$((STAR_SIZE_MIB << 20))
STAR_FILE=big.bin
if [ "$STAR_SIZE" != "$SIZE" ]; then
    STAR_FILE=star.bin
    head -c "$STAR_SIZE" /dev/urandom > "$WORK/www/$STAR_FILE"; chmod 644 "$WORK/www/$STAR_FILE"
fi
bench_nginx_conf "$WORK/nginx" "${IP[origin]}:$NGINX_PORT" "$WORK/www"
# Started with ip netns exec itself, not through the in_ns function: a function run with &
# is a subshell, and $! would be that subshell, not the server (kill and cgroups would miss it).
ip netns exec "${NS[origin]}" nginx -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>>"$WORK/nginx/stderr.log" &
NGINX_PID=$!
echo "$NGINX_PID" > "$CG/nbfleet-$ID-nginx/cgroup.procs"
URL="http://${IP[origin]}:$NGINX_PORT/big.bin"
for _ in $(seq 100); do in_ns s1 curl -sf -r 0-0 -o /dev/null "$URL" && break; sleep 0.1; done
for p in $(pgrep -P "$NGINX_PID"); do echo "$p" > "$CG/nbfleet-$ID-nginx/cgroup.procs"; done

# ping -U (user-to-user: includes the delayers' hold) between a few pairs, and one 64 MiB
# HTTP transfer (TCP slow start included) on the otherwise idle lab.
CHECK=()
for pair in "s1 $LAST" "s1 origin" "$MID origin" "$LAST origin"; do
    read -r a b <<<"$pair"
    ms=$(in_ns "$a" ping -U -c 5 -i 0.2 -q "${IP[$b]}" | awk -F/ '/^rtt|^round-trip/ { print $5 }')
    CHECK+=("$a↔$b $(printf '%.1f' "$ms") ms (configured $((RTT[$a] + RTT[$b])))")
done
r=$(in_ns "$MID" curl -sf -r 0-$(( (SIZE < 67108864 ? SIZE : 67108864) - 1 )) -o /dev/null -w '%{speed_download}' "$URL")
CHECK+=("one HTTP transfer origin→$MID (RTT $((RTT[$MID] + RTT[origin])) ms): $(awk -v s="$r" 'BEGIN { printf "%.1f", s * 8 / 1e6 }') Mbit/s")
log "emulation: ${CHECK[*]}"

# ---- netboot nodes ------------------------------------------------------------------------
"$BIN" keygen --out "$WORK/publisher.key" > "$WORK/publisher.pub" 2>/dev/null
PUB=$(cat "$WORK/publisher.pub")
declare -A NID
for s in "${ALL[@]}"; do
    mkdir -p "$WORK/$s"
    NID[$s]=$("$BIN" node-id --data-dir "$WORK/$s/data" 2>/dev/null)
done
declare -A NAME_OF
for s in "${ALL[@]}"; do NAME_OF[${NID[$s]}]=$s; done
for s in "${ALL[@]}"; do
    peers=()
    for p in "${ALL[@]}"; do [ "$p" = "$s" ] || peers+=("\"${NID[$p]}@${IP[$p]}:$FLEET_PORT\""); done
    bench_node_toml "$WORK/$s/node.toml" "$PUB"
    cat >> "$WORK/$s/node.toml" <<TOML
[tftp]
enabled = false
[http]
listen = "127.0.0.1:$STATUS_PORT"
[fleet]
listen = "0.0.0.0:$FLEET_PORT"
peers = [$(IFS=,; echo "${peers[*]}")]
$( [ -z "${FLEET_UPLOAD_SLOTS:-}" ] || echo "upload_slots = $FLEET_UPLOAD_SLOTS")
TOML
done
status() { in_ns "$1" curl -sf --max-time 5 "http://127.0.0.1:$STATUS_PORT/fleet/status.json"; }

# start_nodes: fresh data dirs (the fleet key kept), all nodes up, every peer connected with
# a measured round trip. 33 nodes take longer to connect (~1000 links, on 2 cores) than 9:
# the wait grows with N (60 s for 8 sites, 220 s for 32).
start_nodes() {
    local s p n
    NODE_PIDS=()
    for s in "${ALL[@]}"; do
        find "$WORK/$s/data" -mindepth 1 -maxdepth 1 ! -name fleet.key -exec rm -rf {} +
        ip netns exec "${NS[$s]}" "$BIN" node --config "$WORK/$s/node.toml" > "$WORK/$s/node.log" 2>&1 &
        p=$!
        NODE_PIDS+=("$p")
        echo "$p" > "$CG/nbfleet-$ID-nodes/cgroup.procs"
    done
    for s in "${ALL[@]}"; do
        for n in $(seq 300); do grep -q "netboot node up" "$WORK/$s/node.log" && break; sleep 0.1; done
        grep -q "netboot node up" "$WORK/$s/node.log" || {
            log "node $s did not start:"; cat "$WORK/$s/node.log" >&2
            in_ns "$s" ss -ltnup >&2; ps -ef | grep -v grep | grep "netboot" >&2; exit 1
        }
    done
    local since until
    since=$(date +%s)
    until=$((since + 60 + (N > 8 ? (N - 8) * 20 / 3 : 0)))
    while [ "$(date +%s)" -le "$until" ]; do
        local ok=1
        for s in "${ALL[@]}"; do
            [ "$(status "$s" | jq '[.peers[] | select(.connected and .rtt_ms != null)] | length')" = "$N" ] || { ok=0; break; }
        done
        [ $ok = 1 ] && { log "all $((N + 1)) nodes connected to each other after $(($(date +%s) - since)) s"; return 0; }
        sleep 0.5
    done
    log "the nodes did not all connect to each other:"; for s in "${ALL[@]}"; do status "$s" >&2; done; exit 1
}
stop_nodes() {
    local p
    for p in "${NODE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${NODE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    NODE_PIDS=()
}

LB=$(awk -v b="$SIZE" -v r="$RATE_MBIT" 'BEGIN { printf "%.2f", b * 8 / (r * 1e6) }')
DEADLINE=$(awk -v l="$LB" 'BEGIN { printf "%d", l * 12 + 180 }')
# The star's: its own lower bound (its file ÷ one link) and what the origin's uplink allows
# (N copies ÷ one link), with room.
STAR_LB=$(awk -v b="$STAR_SIZE" -v r="$RATE_MBIT" 'BEGIN { printf "%.2f", b * 8 / (r * 1e6) }')
STAR_DEADLINE=$(awk -v l="$STAR_LB" -v n="$N" -v d="$DEADLINE" 'BEGIN { t = l * n * 2 + 180; printf "%d", (t > d ? t : d) }')

# run_netboot N: sets RES to "seconds origin_wire_bytes origin_uploaded_bytes busy_cpu_s nodes_cpu_s
# delay_cpu_s publish_seconds peak_node_rss_kB"; keeps the statuses, logs, per-site finish
# times and a progress trace in $WORK/nb-N/.
run_netboot() {
    local n=$1 dir="$WORK/nb-$1" s t0 t tx0 tx1 b0 b1 c0 c1 d0 d1 left pub_pid tpub rss peak=0
    mkdir -p "$dir"
    newfile
    start_nodes
    quiet
    tx0=$(txbytes); b0=$(busy); c0=$(cpu nodes); d0=$(cpu delay); t0=$(now)
    ( in_ns origin "$BIN" publish --key "$WORK/publisher.key" --to "${NID[origin]}@127.0.0.1:$FLEET_PORT" \
        --name bench --file "big.bin=$WORK/www/big.bin" > "$dir/publish.log" 2>&1; echo "$(now)" > "$dir/publish.end" ) &
    pub_pid=$!
    # A site has it when its node logs the commit ("accepted bench …"); the log's timestamp
    # is the finish time (cheaper and more exact than polling each status under load). One
    # grep over the logs of the sites still waiting, and one awk over the nodes' VmRSS, per
    # round: with 32 sites a process per site every 0.5 s would load the cores measured.
    local stats=() hits
    for p in "${NODE_PIDS[@]}"; do stats+=("/proc/$p/status"); done
    left=("${SITES[@]}")
    : > "$dir/done"
    while [ ${#left[@]} -gt 0 ]; do
        sleep 0.5
        t=$(now)
        local still=()
        hits=$'\n'$(cd "$WORK" && grep -l "accepted bench" "${left[@]/%//node.log}" || true)$'\n'
        for s in "${left[@]}"; do
            if [[ $hits == *$'\n'"$s/node.log"$'\n'* ]]; then
                line=$(grep -m1 "accepted bench" "$WORK/$s/node.log")
                echo "$s $(awk -v a="$t0" -v b="$(date -d "${line%% *}" +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" >> "$dir/done"
            else
                still+=("$s")
            fi
        done
        left=("${still[@]}")
        echo "$(awk -v a="$t0" -v b="$t" 'BEGIN { printf "%.1f", b - a }') $(busy)" >> "$dir/cpu"
        # The largest node (VmRSS, kB) seen so far: the footprint while distributing.
        rss=$(awk '/^VmRSS:/ && $2 > m { m = $2 } END { print m + 0 }' "${stats[@]}" 2>/dev/null || true)
        [ "${rss:-0}" -le "$peak" ] || peak=$rss
        if awk -v a="$t0" -v b="$t" -v d="$DEADLINE" 'BEGIN { exit !(b - a > d) }'; then
            log "netboot run $n: not done after ${DEADLINE} s (left: ${left[*]})"
            break
        fi
    done
    t=$(now); tx1=$(txbytes); b1=$(busy); c1=$(cpu nodes); d1=$(cpu delay)
    wait "$pub_pid" || true
    tpub=$(awk -v a="$t0" -v b="$(cat "$dir/publish.end" 2>/dev/null || echo "$t")" 'BEGIN { printf "%.1f", b - a }')
    for s in "${ALL[@]}"; do status "$s" > "$dir/$s.json" || echo '{}' > "$dir/$s.json"; cp "$WORK/$s/node.log" "$dir/$s.log"; done
    stop_nodes
    "$WAN" check "$WAN_ENV" >/dev/null 2>&1 || { log "a delayer died:"; "$WAN" check "$WAN_ENV" >&2; exit 1; }
    if [ ${#left[@]} -gt 0 ]; then RES=fail; return; fi
    RES=$(awk -v a="$t0" -v b="$t" -v tx="$((tx1 - tx0))" -v up="$(jq .uploaded_bytes "$dir/origin.json")" \
        -v busy="$(awk -v a="$b0" -v b="$b1" 'BEGIN { print b - a }')" -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" \
        -v d="$(awk -v a="$d0" -v b="$d1" 'BEGIN { print b - a }')" -v p="$tpub" -v rss="$peak" -v last="$(sort -k2 -n "$dir/done" | tail -1 | cut -d' ' -f2)" \
        'BEGIN { printf "%.1f %.0f %.0f %.1f %.1f %.1f %s %d\n", last, tx, up, busy, c, d, p, rss }')
}

# run_star N: sets RES to "seconds origin_wire_bytes busy_cpu_s nginx_cpu_s delay_cpu_s".
run_star() {
    local n=$1 dir="$WORK/star-$1" s t0 t1 tx0 tx1 b0 b1 c0 c1 d0 d1 pids=() bad=0
    mkdir -p "$dir"
    quiet
    tx0=$(txbytes); b0=$(busy); c0=$(cpu nginx); d0=$(cpu delay); t0=$(now)
    for s in "${SITES[@]}"; do
        in_ns "$s" curl -sf --max-time "$STAR_DEADLINE" -o /dev/null -w '%{size_download} %{time_total}\n' "${URL%/*}/$STAR_FILE" > "$dir/$s" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || bad=1; done
    t1=$(now); tx1=$(txbytes); b1=$(busy); c1=$(cpu nginx); d1=$(cpu delay)
    for s in "${SITES[@]}"; do [ "$(cut -d' ' -f1 "$dir/$s")" = "$STAR_SIZE" ] || bad=1; done
    if [ $bad = 1 ]; then RES=fail; return; fi
    RES=$(awk -v a="$t0" -v b="$t1" -v tx="$((tx1 - tx0))" -v busy="$(awk -v a="$b0" -v b="$b1" 'BEGIN { print b - a }')" \
        -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" -v d="$(awk -v a="$d0" -v b="$d1" 'BEGIN { print b - a }')" \
        'BEGIN { printf "%.1f %.0f %.1f %.1f %.1f\n", b - a, tx, busy, c, d }')
}

START=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
NB=() ST=()
for n in $(seq "$RUNS"); do
    run_netboot "$n"; NB+=("$n $RES"); log "netboot run $n: $RES"
    if [ "${FLEET_STAR:-1}" = 1 ] && [ "$n" -le "${FLEET_STAR_RUNS:-$RUNS}" ]; then run_star "$n"; ST+=("$n $RES"); log "star run $n: $RES"; fi
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- results ------------------------------------------------------------------------------
col() { local k=$1; shift; printf '%s\n' "$@" | awk -v k="$k" '$2 != "fail" { print $k }' | median; }
nb_t=$(col 2 "${NB[@]}"); nb_tx=$(col 3 "${NB[@]}"); nb_up=$(col 4 "${NB[@]}"); nb_busy=$(col 5 "${NB[@]}")
nb_cpu=$(col 6 "${NB[@]}"); nb_dcpu=$(col 7 "${NB[@]}"); nb_pub=$(col 8 "${NB[@]}")
nb_rss=$(col 9 "${NB[@]}")
STAR_RUNS=${#ST[@]}
[ ${#ST[@]} -gt 0 ] || ST=("0 fail")
st_t=$(col 2 "${ST[@]}"); st_tx=$(col 3 "${ST[@]}"); st_busy=$(col 4 "${ST[@]}"); st_cpu=$(col 5 "${ST[@]}"); st_dcpu=$(col 6 "${ST[@]}")
# The netboot run whose time is the median: its distribution tree is shown.
MED=$(printf '%s\n' "${NB[@]}" | awk '$2 != "fail"' | sort -k2 -n | awk -v m="$nb_t" '$2 == m { print $1; exit }')
x() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "fail" || b == 0) print "-"; else printf "%.2f×", a / b }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
util() { awk -v c="$1" -v t="$2" -v n="$(nproc)" 'BEGIN { if (t == "fail" || t == 0) print "-"; else printf "%.0f %%", 100 * c / (t * n) }'; }
runs_of() { printf '%s\n' "$@" | awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $2 }'; }
# The settings that differ from the defaults, as they were given.
ENVS=()
for v in FLEET_SITES FLEET_SIZE_MIB FLEET_STAR_SIZE_MIB FLEET_ORIGIN_RTT FLEET_RATE_MBIT FLEET_UPLOAD_SLOTS FLEET_STAR FLEET_STAR_RUNS FLEET_SECTION; do
    [ -z "${!v:-}" ] || ENVS+=("$v=${!v}")
done
{
    echo "<!-- $SECTION:begin -->"
    echo "### Fleet: one ${SIZE_MIB} MiB release to $N sites, ${RATE_MBIT} Mbit/s links, 10–80 ms"
    echo
    echo "Command: \`${ENVS[*]}${ENVS[*]:+ }bash tests/bench/fleet.sh $RUNS\` — $(date -u +%Y-%m-%d), netboot $REV, $(nproc) cores, $(uname -r), median of $RUNS runs (netboot) and $STAR_RUNS (star); load average before/after: $LOAD0 / $LOAD1; took $(( ($(date +%s) - START) / 60 )) min."
    echo
    echo "Links to the core router: origin ${ORIGIN_RTT} ms; s1…$LAST ${SITE_RTTS[*]} ms (round trip; site to site = the sum of both links), each ${RATE_MBIT} Mbit/s. Lower bound = size ÷ ${RATE_MBIT} Mbit/s = **${LB} s**."
    echo "Emulation check on the idle lab: $(IFS=';'; echo "${CHECK[*]}" | sed 's/;/; /g')."
    echo
    echo "| | last site has it | ÷ lower bound | origin sent (wire) | ÷ size | machine CPU busy |"
    echo "|---|---|---|---|---|---|"
    echo "| netboot fleet sync | ${nb_t} s | $(x "$nb_t" "$LB") | $(mib "$nb_tx") MiB (payload $(mib "$nb_up") MiB) | $(x "$nb_tx" "$SIZE") | $(util "$nb_busy" "$nb_t") |"
    if [ "$STAR_RUNS" != 0 ] && [ "$STAR_SIZE" = "$SIZE" ]; then
        echo "| star: $N × curl from nginx at the origin | ${st_t} s | $(x "$st_t" "$LB") | $(mib "$st_tx") MiB | $(x "$st_tx" "$SIZE") | $(util "$st_busy" "$st_t") |"
    elif [ "$STAR_RUNS" != 0 ]; then
        # Measured with a smaller file; its ratios are to its own size and lower bound.
        echo "| star, measured with a ${STAR_SIZE_MIB} MiB file: $N × curl from nginx at the origin | ${st_t} s | $(x "$st_t" "$STAR_LB") of its ${STAR_LB} s | $(mib "$st_tx") MiB | $(x "$st_tx" "$STAR_SIZE") | $(util "$st_busy" "$st_t") |"
        echo "| star scaled to ${SIZE_MIB} MiB (the row above × ${SIZE_MIB}/${STAR_SIZE_MIB}; not measured) | $(awk -v t="$st_t" -v a="$SIZE" -v b="$STAR_SIZE" 'BEGIN { if (t == "fail") print "-"; else printf "%.1f", t * a / b }') s | $(x "$(awk -v t="$st_t" -v a="$SIZE" -v b="$STAR_SIZE" 'BEGIN { if (t == "fail") print "fail"; else print t * a / b }')" "$LB") | | | |"
    fi
    echo "| targets (issue 5) | | ≤ 1.30× | | ≤ 2.00× | |"
    echo
    echo "Runs (s): netboot $(runs_of "${NB[@]}")$( [ "$STAR_RUNS" = 0 ] || echo "; star $(runs_of "${ST[@]}")"). \`publish --to\` itself returned after ${nb_pub} s (origin committed)."
    echo "Node footprint while distributing: the largest node's VmRSS peaked at $(awk -v k="$nb_rss" 'BEGIN { printf "%.1f", k / 1024 }') MiB (median over the runs of the largest of the $NODES, sampled every 0.5 s)."
    echo "CPU seconds per run (cpuacct): the $NODES nodes ${nb_cpu} ($(awk -v c="$nb_cpu" -v n="$((N + 1))" -v b="$SIZE" 'BEGIN { if (c == "" || c == "fail") print "-"; else printf "%.1f", c / (n * b / 1073741824) }') CPU-s per GiB per node: the nodes' CPU-s ÷ (nodes × release size); the origin only sends and the last site only receives), delayers ${nb_dcpu} (netboot)$( [ "$STAR_RUNS" = 0 ] || echo "; nginx ${st_cpu}, delayers ${st_dcpu} (star)"). Machine CPU busy = all CPU time of the host during the run ÷ (time × $(nproc) cores), other users' work included."
    if [ -n "$MED" ] && [ "$N" -gt 8 ]; then
        # A matrix of N+1 columns is unreadable: per site, its finish time, its sources (MiB,
        # largest first, those of at least 1 MiB) and its hop: 1 + the hop of its largest
        # source (the origin is hop 0), i.e. its place in the chain.
        d="$WORK/nb-$MED"
        names=$(for s in "${ALL[@]}"; do printf '%s\n%s\n' "${NID[$s]}" "$s"; done | jq -R . | jq -s '[recurse(.[2:]; length > 0) | {(.[0]): .[1]}] | add')
        declare -A HOP=([origin]=0) SRC=() TOP=()
        for s in "${SITES[@]}"; do
            SRC[$s]=$(jq -r --argjson names "$names" '[.peers[] | select(.received_bytes >= 1048576) | {n: $names[.id], b: .received_bytes}] | sort_by(-.b)
                | if length == 0 then "-" else map("\(.n) \(.b / 1048576 | round)") | join(", ") end' "$d/$s.json")
            TOP[$s]=${SRC[$s]%% *}
        done
        hop() { # the hop of site $1, following the largest sources (a cycle or a gap: "?")
            local s=$1 k=0
            while [ "$s" != origin ]; do
                s=${TOP[$s]:-}; k=$((k + 1))
                [ -n "$s" ] && [ "$s" != - ] && [ $k -le "$N" ] || { echo "?"; return; }
            done
            echo "$k"
        }
        echo
        echo "Per site in netboot run $MED: finish time (s after publish started), hop in the chain (1 + its largest source's; origin 0), and what it received from whom (MiB, verified; sources of ≥ 1 MiB, largest first):"
        echo
        echo "| site (link RTT) | done at | hop | received from |"
        echo "|---|---|---|---|"
        for s in "${SITES[@]}"; do
            echo "| $s (${RTT[$s]} ms) | $(awk -v s="$s" '$1 == s { print $2 }' "$d/done") | $(hop "$s") | ${SRC[$s]} |"
        done
    elif [ -n "$MED" ]; then
        d="$WORK/nb-$MED"
        echo
        echo "Who sent what to whom in netboot run $MED (MiB received, verified, by the row's site from the column's; finish time in s after publish started):"
        echo
        printf '| site (link RTT) | done at |'; for p in "${ALL[@]}"; do printf ' from %s |' "$p"; done; echo
        printf '|---|---|'; for _ in "${ALL[@]}"; do printf -- '---|'; done; echo
        for s in "${SITES[@]}"; do
            printf '| %s (%s ms) | %s |' "$s" "${RTT[$s]}" "$(awk -v s="$s" '$1 == s { print $2 }' "$d/done")"
            for p in "${ALL[@]}"; do
                if [ "$p" = "$s" ]; then printf ' – |'; continue; fi
                b=$(jq --arg id "${NID[$p]}" '[.peers[] | select(.id == $id) | .received_bytes] | first // 0' "$d/$s.json")
                printf ' %s |' "$(mib "$b")"
            done
            echo
        done
    fi
    if [ -n "$MED" ]; then
        echo
        top=$(for s in "${ALL[@]}"; do echo "$(jq .uploaded_bytes "$d/$s.json") $s"; done | sort -n | tail -1)
        echo "Tree bound of that run: the node that sent most, ${top#* } ($(mib "${top% *}") MiB), needs $(awk -v b="${top% *}" -v r="$RATE_MBIT" 'BEGIN { printf "%.1f", b * 8 / (r * 1e6) }') s on its ${RATE_MBIT} Mbit/s uplink = $(x "$(awk -v b="${top% *}" -v r="$RATE_MBIT" 'BEGIN { print b * 8 / (r * 1e6) }')" "$LB") the lower bound; the run took $(awk -v s="$MED" '$1 == s { print $2 }' < <(printf '%s\n' "${NB[@]}")) s."
        echo "Uploaded by each node (MiB): $(for s in "${ALL[@]}"; do printf '%s %s, ' "$s" "$(mib "$(jq .uploaded_bytes "$d/$s.json")")"; done | sed 's/, $//')."
        echo "Fetch decisions logged in that run (all nodes): $(cat "$d"/*.log | grep -c 'switching from' || true) switches to a nearer peer, $(cat "$d"/*.log | grep -c 'stalled on' || true) stalls, $(cat "$d"/*.log | grep -c 'nothing new of' || true) waits on a still-fetching nearer peer that ran out."
    fi
    echo "<!-- $SECTION:end -->"
} > "$WORK/section.md"
cat "$WORK/section.md"
[ "${FLEET_DOC:-1}" = 1 ] || exit 0
bench_put_section "$SECTION" "$WORK/section.md"
