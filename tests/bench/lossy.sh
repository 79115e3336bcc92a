#!/usr/bin/env bash
# Fleet sync over one lossy WAN hop: a release moving between two netboot nodes, side by side
# in the same run with HTTP over TCP (nginx + curl, the host's default congestion control)
# over the same link.
#
#   bash tests/bench/lossy.sh [RUNS]       (as root; default 1 run of each per link)
#   LOSSY_SIZE_MIB=N        release size (default 200)
#   LOSSY_FILES=N           the release is N files of LOSSY_SIZE_MIB ÷ N each (default 1); TCP
#                           fetches them one after another over one connection (one curl
#                           with N URLs: HTTP/1.1 keep-alive, as a client or mirror script does)
#   LOSSY_RATE_MBIT=R       the link's rate (default 100)
#   LOSSY_RTTS="10 80"      round trips to measure, ms
#   LOSSY_LOSSES="0 1 2 5"  random loss in each direction, %
#   LOSSY_MAX_SECS=S        a transfer still running after S s is stopped and its rate is what
#                           it moved until then, marked "≥" (default 90)
#   LOSSY_CONGESTION=NAME   the nodes' [fleet] congestion (bbr, cubic, newreno; default: the
#                           node's default)
#   LOSSY_WINDOW=SIZE       the nodes' [fleet] window (default: the node's default)
#   LOSSY_STREAMS=N         the nodes' [fleet] streams, pieces of a file in flight (default:
#                           the node's default)
#   LOSSY_DOC=0             print the section but do not write docs/benchmarks.md
#   LOSSY_SECTION=NAME      the docs/benchmarks.md section it writes (default lossy)
#   LOSSY_KEEP=1            keep the work dir (logs) in /var/tmp
#   LOSSY_TRACE=1           the nodes log their fleet connections' congestion trace (one line
#                           a second: packets sent and declared lost, what the controller was
#                           told, cwnd, pacing rate, bandwidth estimate, RTT; debug target
#                           netboot_node::fleet::cc_trace), kept as nb-K-N/trace.log
#
# After every transfer it logs what the link did to it (lossy.sh: link …): per direction the
# packets the sender's tbf sent and dropped, the UDP datagrams / TCP segments that arrived, the
# receiver's socket-buffer drops, and so the loss the link really applied; and TCP's
# retransmitted segments (the sender namespace's counters).
#   WAN_DELAY_BIN=PATH      the delayer (default: built, target/release/wan_delay)
#   NETBOOT_BIN=PATH        measure this netboot binary (an older build, for a before/after)
#                           instead of building the tree's
#
# Lab (tests/wan/wan.sh; this kernel has no netem): for each (round trip, loss) a fresh pair
# of site namespaces a and b joined by one veth link: tbf at LOSSY_RATE_MBIT on both egress
# ends, an NFQUEUE delayer on both receiving ends holding each packet RTT/2 and dropping it
# with the loss probability (so loss is in both directions, round-trip loss 1-(1-p)^2).
# Nothing is configured in the root namespace.
#
# TCP: nginx (Debian's, sendfile) in a serves the release file on a's link address; curl in b
# downloads it. Rate = bytes / curl's time_total (connect included).
# netboot: the release build; node a holds the release (published into its data dir before
# the runs), node b starts with an empty data dir and a as its [fleet] peer. Rate = bytes /
# (b's "accepted" log line − b's "learned of" log line): from the moment b knows the release
# until it has committed every verified byte. [dhcp] off, [tftp] off, HTTP on 127.0.0.1 in
# each namespace (status only).
#
# Prints a table (Mbit/s of payload, netboot ÷ TCP) and writes it into docs/benchmarks.md
# between the lossy markers. Everything it starts is stopped and the lab removed on any exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-1}
SIZE_MIB=${LOSSY_SIZE_MIB:-200}
FILES=${LOSSY_FILES:-1}
[[ $FILES =~ ^[1-9][0-9]*$ ]] || { echo "lossy.sh: LOSSY_FILES must be a whole number ≥ 1, not '$FILES'" >&2; exit 2; }
RATE_MBIT=${LOSSY_RATE_MBIT:-100}
read -ra RTTS <<<"${LOSSY_RTTS:-10 80}"
read -ra LOSSES <<<"${LOSSY_LOSSES:-0 1 2 5}"
MAX_SECS=${LOSSY_MAX_SECS:-90}
SECTION=${LOSSY_SECTION:-lossy}
FLEET_PORT=7311
STATUS_PORT=8080
NGINX_PORT=8081
BENCH=lossy.sh
# shellcheck source=lib.sh
source tests/bench/lib.sh
bench_need_root "it creates network namespaces"
bench_install --stop nginx curl jq nginx-light iproute2 iptables util-linux procps
bench_build
# The delayer: built unless given (WAN_DELAY_BIN=target/release/wan_delay saves a second
# release build of the shared dependencies, whose features differ between the two packages).
if [ -z "${WAN_DELAY_BIN:-}" ]; then
    cargo build --release --locked -q -p netboot-tests --bin wan_delay
    WAN_DELAY_BIN="$PWD/target/release/wan_delay"
fi
[ -x "$WAN_DELAY_BIN" ] || bench_die "no wan_delay at $WAN_DELAY_BIN"
export WAN_DELAY_BIN
WAN=tests/wan/wan.sh

WORK=$(mktemp -d /var/tmp/netboot-lossy.XXXXXX)
chmod 755 "$WORK"
WAN_ENV=
PIDS=()
log() { echo "lossy.sh: $*" >&2; }
stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
cleanup() {
    set +e
    stop_all
    [ -n "$WAN_ENV" ] && "$WAN" down "$WAN_ENV" >/dev/null 2>&1
    [ "${LOSSY_KEEP:-0}" = 1 ] && { log "kept $WORK"; return; }
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
now() { date +%s.%N; }
# counters NS: the namespace's packet counters, one "name value" a line: UDP and TCP (nstat),
# tbf's sent and dropped packets.
counters() {
    ip netns exec "$1" nstat -saz 2>/dev/null |
        awk '$1 ~ /^(UdpInDatagrams|UdpOutDatagrams|UdpRcvbufErrors|UdpSndbufErrors|UdpInErrors|TcpInSegs|TcpOutSegs|TcpRetransSegs)$/ { print $1, $2 }'
    tc -n "$1" -s qdisc show 2>/dev/null | tr -d ',(' |
        awk '/^qdisc tbf/ { t = 1; next } t && $1 == "Sent" { print "TbfSent", $4; print "TbfDropped", $7; t = 0 }'
}
# link_snap FILE: the counters of both ends of the current link.
link_snap() { { counters "$NS_A" | sed 's/^/a /'; counters "$NS_B" | sed 's/^/b /'; } > "$1"; }
# link_report WHAT BEFORE AFTER: logs what the link did between two snapshots.
link_report() {
    log "link, $1: $(awk '
        NR == FNR { v0[$1 " " $2] = $3; next }
        { d[$1 " " $2] = $3 - v0[$1 " " $2] }
        END {
            for (s in d) { split(s, k, " "); D[k[1], k[2]] = d[s] }
            # Per direction: what the tbf of the sender sent (counted per segment), what arrived in
            # the receiver (its UDP datagrams, socket-buffer drops included, or TCP segments).
            # The NFQUEUE rule counts skbs before segmentation, not packets: not used for this.
            for (i = 0; i < 2; i++) {
                to = i ? "a" : "b"; from = i ? "b" : "a"
                sent = D[from, "TbfSent"]; got = D[to, "UdpInDatagrams"] + D[to, "UdpRcvbufErrors"] + D[to, "TcpInSegs"]
                printf "%s→%s: %d pkts sent (%d tbf drops), %d arrived (%.2f %% lost on the link), %d UDP rcvbuf drops; ", from, to, sent, D[from, "TbfDropped"], got, sent ? (sent - got) * 100 / sent : 0, D[to, "UdpRcvbufErrors"]
            }
            printf "TCP from a: %d segments, %d retransmitted (%.2f %%); UDP sndbuf errors a %d", D["a", "TcpOutSegs"], D["a", "TcpRetransSegs"], D["a", "TcpOutSegs"] ? D["a", "TcpRetransSegs"] * 100 / D["a", "TcpOutSegs"] : 0, D["a", "UdpSndbufErrors"]
        }' "$2" "$3")"
}
# cpu_s PID: user + system CPU seconds of a process so far.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.1f", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# ---- the release, node a's data (published once), node b's identity ------------------------
SIZE=$((SIZE_MIB << 20))
mkdir -p "$WORK/www" "$WORK/a" "$WORK/b"
# The release's files: big.bin, or big-1.bin … big-N.bin of SIZE ÷ N bytes each.
NAMES=()
if [ "$FILES" = 1 ]; then NAMES=(big.bin); else for i in $(seq "$FILES"); do NAMES+=("big-$i.bin"); done; fi
SIZE=$((SIZE / FILES * FILES))
PUBLISH_FILES=()
for n in "${NAMES[@]}"; do
    head -c "$((SIZE / FILES))" /dev/urandom > "$WORK/www/$n"
    chmod 644 "$WORK/www/$n"
    PUBLISH_FILES+=(--file "$n=$WORK/www/$n")
done
"$BIN" keygen --out "$WORK/publisher.key" > "$WORK/publisher.pub" 2>/dev/null
PUB=$(cat "$WORK/publisher.pub")
ID_A=$("$BIN" node-id --data-dir "$WORK/a/data" 2>/dev/null)
ID_B=$("$BIN" node-id --data-dir "$WORK/b/data" 2>/dev/null)
# node_toml SITE PEER: the node's config; its [fleet] peer is PEER (id@ip:port).
node_toml() {
    bench_node_toml "$WORK/$1/node.toml" "$PUB"
    cat >> "$WORK/$1/node.toml" <<TOML
[tftp]
enabled = false
[http]
listen = "127.0.0.1:$STATUS_PORT"
[fleet]
listen = "0.0.0.0:$FLEET_PORT"
peers = ["$2"]
$( [ -z "${LOSSY_CONGESTION:-}" ] || echo "congestion = \"$LOSSY_CONGESTION\"")
$( [ -z "${LOSSY_WINDOW:-}" ] || echo "window = \"$LOSSY_WINDOW\"")
$( [ -z "${LOSSY_STREAMS:-}" ] || echo "streams = $LOSSY_STREAMS")
TOML
}
node_toml a "$ID_B@127.0.0.1:1"
"$BIN" publish --config "$WORK/a/node.toml" --key "$WORK/publisher.key" --name bench \
    "${PUBLISH_FILES[@]}" > "$WORK/publish.log" 2>&1 || { cat "$WORK/publish.log" >&2; exit 1; }

WAN_ENV=$(WAN_OWNER_PID=$$ TMPDIR=/tmp "$WAN" up 2>/dev/null | sed -n 's/^WAN_ENV=//p')
[ -n "$WAN_ENV" ] || { log "wan.sh up failed"; exit 1; }
wan() { "$WAN" "$1" "$WAN_ENV" "${@:2}" 2>>"$WORK/wan.log"; }

# ---- one link -----------------------------------------------------------------------------
# link K RTT LOSS: sites aK and bK joined by the link; sets NS_A NS_B IP_A IP_B.
link() {
    local k=$1 out
    NS_A=$(wan site "a$k" | sed -n 's/^SITE_.*_NS=//p')
    NS_B=$(wan site "b$k" | sed -n 's/^SITE_.*_NS=//p')
    out=$(wan link "a$k" "b$k" "$2" "$RATE_MBIT" "$3")
    IP_A=$(sed -n "s/^LINK_A${k}_B${k}_A${k}=//p" <<<"$out")
    IP_B=$(sed -n "s/^LINK_A${k}_B${k}_B${k}=//p" <<<"$out")
    [ -n "$IP_A" ] && [ -n "$IP_B" ] || { log "wan.sh link failed:"; cat "$WORK/wan.log" >&2; exit 1; }
}

# run_tcp DIR: sets RES to "mbit_per_s" (or "≥mbit" when stopped at LOSSY_MAX_SECS). Several
# files: one curl fetches them in turn over one connection; bytes and times are summed.
run_tcp() {
    local out bytes secs n args=()
    for n in "${NAMES[@]}"; do args+=(-o /dev/null "http://$IP_A:$NGINX_PORT/$n"); done
    link_snap "$WORK/snap0"
    out=$(ip netns exec "$NS_B" curl -s --max-time "$MAX_SECS" -w '%{size_download} %{time_total}\n' "${args[@]}" |
        awk '{ b += $1; s += $2 } END { printf "%d %f", b, s }' || true)
    read -r bytes secs <<<"$out"
    link_snap "$WORK/snap1"
    link_report "TCP" "$WORK/snap0" "$WORK/snap1"
    RES=$(awk -v b="${bytes:-0}" -v s="${secs:-0}" -v all="$SIZE" \
        'BEGIN { if (s <= 0) { print "fail"; exit } printf "%s%.1f", (b < all ? "≥" : ""), b * 8 / s / 1e6 }')
}

# run_netboot DIR: sets RES to "mbit_per_s cpu_a cpu_b" (rate "≥…" when stopped).
run_netboot() {
    local dir=$1 pa pb t0 t1 line held i
    mkdir -p "$dir"
    find "$WORK/b/data" -mindepth 1 -maxdepth 1 ! -name fleet.key -exec rm -rf {} +
    link_snap "$dir/snap0"
    ip netns exec "$NS_A" "$BIN" node --config "$WORK/a/node.toml" > "$dir/a.log" 2>&1 &
    pa=$!
    PIDS+=("$pa")
    for i in $(seq 100); do grep -q "netboot node up" "$dir/a.log" && break; sleep 0.1; done
    ip netns exec "$NS_B" "$BIN" node --config "$WORK/b/node.toml" > "$dir/b.log" 2>&1 &
    pb=$!
    PIDS+=("$pb")
    t0=$(now)
    line=
    while [ -z "$line" ]; do
        sleep 0.25
        line=$(grep -m1 "accepted bench" "$dir/b.log" || true)
        if [ -z "$line" ] && awk -v a="$t0" -v b="$(now)" -v m="$MAX_SECS" 'BEGIN { exit !(b - a > m) }'; then
            break
        fi
    done
    local ca cb start
    ca=$(cpu_s "$pa"); cb=$(cpu_s "$pb")
    start=$(grep -m1 "learned of bench" "$dir/b.log" || true)
    if [ -z "$start" ]; then
        log "node b never learned of the release:"; tail -n 20 "$dir/b.log" >&2; RES="fail $ca $cb"
    elif [ -n "$line" ]; then
        t0=$(date -d "${start%% *}" +%s.%N); t1=$(date -d "${line%% *}" +%s.%N)
        RES=$(awk -v a="$t0" -v b="$t1" -v s="$SIZE" -v ca="$ca" -v cb="$cb" 'BEGIN { printf "%.1f %s %s", s * 8 / (b - a) / 1e6, ca, cb }')
    else
        t0=$(date -d "${start%% *}" +%s.%N)
        held=$(ip netns exec "$NS_B" curl -sf --max-time 5 "http://127.0.0.1:$STATUS_PORT/fleet/status.json" |
            jq '[.fetching[] | .held_bytes] | add // 0' || echo 0)
        RES=$(awk -v a="$t0" -v b="$(now)" -v h="$held" -v ca="$ca" -v cb="$cb" 'BEGIN { printf "≥%.1f %s %s", h * 8 / (b - a) / 1e6, ca, cb }')
    fi
    stop_all
    link_snap "$dir/snap1"
    link_report "netboot" "$dir/snap0" "$dir/snap1"
    if [ "${LOSSY_TRACE:-0}" = 1 ]; then
        grep -h "fleet congestion" "$dir/a.log" "$dir/b.log" > "$dir/trace.log" || true
        log "sender's congestion trace ($dir/trace.log), one total per connection that carried data:"
        grep "fleet congestion: total" "$dir/a.log" >&2 || true
        log "connections node b closed with \"too many gaps in stream buffer\" (QUIC's reassembly limit): $(grep -c "too many gaps" "$dir/b.log")"
    fi
}
# Node logs: with LOSSY_TRACE=1 the congestion trace too (debug, its own target).
if [ "${LOSSY_TRACE:-0}" = 1 ]; then
    export RUST_LOG="${LOSSY_RUST_LOG:-info,iroh_blobs=warn,iroh=warn,noq=warn,noq_proto=warn,netboot_node::fleet::cc_trace=debug,iroh::_events::conn::closed=debug}"
fi

START=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
TCP_CC=
ROWS=()
k=0
for rtt in "${RTTS[@]}"; do
    for loss in "${LOSSES[@]}"; do
        k=$((k + 1))
        link "$k" "$rtt" "$loss"
        [ -n "$TCP_CC" ] || TCP_CC=$(ip netns exec "$NS_A" sysctl -n net.ipv4.tcp_congestion_control)
        node_toml a "$ID_B@$IP_B:$FLEET_PORT"
        node_toml b "$ID_A@$IP_A:$FLEET_PORT"
        bench_nginx_conf "$WORK/nginx$k" "$IP_A:$NGINX_PORT" "$WORK/www"
        ip netns exec "$NS_A" nginx -e "$WORK/nginx$k/error.log" -c "$WORK/nginx$k/nginx.conf" -g 'daemon off;' 2>>"$WORK/nginx$k/stderr.log" &
        PIDS+=("$!")
        for _ in $(seq 100); do ip netns exec "$NS_B" curl -sf -r 0-0 -o /dev/null "http://$IP_A:$NGINX_PORT/${NAMES[0]}" && break; sleep 0.1; done
        tcp=() nb=()
        for n in $(seq "$RUNS"); do
            run_tcp; tcp+=("$RES"); log "rtt $rtt ms, loss $loss %, run $n: TCP $RES Mbit/s"
        done
        stop_all
        for n in $(seq "$RUNS"); do
            run_netboot "$WORK/nb-$k-$n"; nb+=("$RES"); log "rtt $rtt ms, loss $loss %, run $n: netboot $RES (Mbit/s, CPU-s a, b)"
        done
        "$WAN" check "$WAN_ENV" >/dev/null 2>&1 || { log "a delayer died:"; "$WAN" check "$WAN_ENV" >&2; exit 1; }
        ROWS+=("$rtt|$loss|$(printf '%s ' "${tcp[@]}")|$(printf '%s\n' "${nb[@]}" | awk '{ printf "%s ", $1 }')|$(printf '%s\n' "${nb[@]}" | awk '{ printf "%s/%s ", $2, $3 }')")
    done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# The median of values that may carry "≥" (a lower bound): sorted by number, mark kept.
med() { tr ' ' '\n' | grep -v '^$' | grep -v fail | awk '{ v = $1; sub(/^≥/, "", v); print v, $1 }' | sort -n |
    awk '{ a[NR] = $2 } END { if (NR == 0) print "fail"; else print a[int((NR + 1) / 2)] }'; }
num() { sed 's/^≥//' <<<"$1"; }
ratio() { awk -v a="$(num "$1")" -v b="$(num "$2")" -v m="$( [[ $1 == ≥* || $2 == ≥* ]] && echo "~" )" \
    'BEGIN { if (a == "fail" || b == "fail" || b == 0) print "—"; else printf "%s%.2f×", m, a / b }'; }
ENVS=()
for v in LOSSY_SIZE_MIB LOSSY_FILES LOSSY_RATE_MBIT LOSSY_RTTS LOSSY_LOSSES LOSSY_MAX_SECS LOSSY_CONGESTION LOSSY_WINDOW LOSSY_STREAMS LOSSY_SECTION NETBOOT_BIN WAN_DELAY_BIN; do
    [ -z "${!v:-}" ] || ENVS+=("$v=\"${!v}\"")
done
CC_NODE=${LOSSY_CONGESTION:-$(grep -m1 -o 'congestion [a-z]*' "$WORK"/nb-1-1/b.log | cut -d' ' -f2)}
WIN_NODE=${LOSSY_WINDOW:-$(grep -m1 -o 'window [0-9]* [A-Za-z]*' "$WORK"/nb-1-1/b.log | cut -d' ' -f2-)}
STREAMS_NODE=${LOSSY_STREAMS:-$(grep -m1 -o 'streams [0-9]*' "$WORK"/nb-1-1/b.log | cut -d' ' -f2)}
{
    echo "<!-- $SECTION:begin -->"
    echo "### Lossy link: one ${SIZE_MIB} MiB release$( [ "$FILES" = 1 ] || echo " of $FILES files") between two nodes, ${RATE_MBIT} Mbit/s, netboot (QUIC, ${CC_NODE}) vs HTTP/TCP (${TCP_CC})"
    echo
    echo "Command: \`${ENVS[*]}${ENVS[*]:+ }bash tests/bench/lossy.sh $RUNS\` — $(date -u +%Y-%m-%d), netboot $REV, $(nproc) cores, $(uname -r), median of $RUNS run(s) each; load average before/after: $LOAD0 / $LOAD1; took $(( ($(date +%s) - START) / 60 )) min."
    echo
    echo "netboot: [fleet] congestion = \"$CC_NODE\", window = \"$WIN_NODE\", streams = $STREAMS_NODE; TCP: nginx $(bench_ver nginx-light) + curl $(bench_ver curl), the host's net.ipv4.tcp_congestion_control = $TCP_CC. Loss is random, per packet, in each direction. Rates are payload Mbit/s; \"≥\" = stopped after ${MAX_SECS} s, rate of what had arrived."
    echo
    echo "| RTT | loss each way | HTTP/TCP ($TCP_CC) | netboot ($CC_NODE) | netboot ÷ TCP | CPU-s sender/receiver (netboot) | runs TCP; netboot |"
    echo "|---|---|---|---|---|---|---|"
    for r in "${ROWS[@]}"; do
        IFS='|' read -r rtt loss tcps nbs cpus <<<"$r"
        t=$(med <<<"$tcps"); b=$(med <<<"$nbs")
        echo "| $rtt ms | $loss % | $t | $b | $(ratio "$b" "$t") | ${cpus% } | ${tcps% }; ${nbs% } |"
    done
    echo
    echo "Target (issue 15): netboot ≥ 0.90× TCP up to 2 % loss, ≥ 1.00× at 5 %."
    echo "<!-- $SECTION:end -->"
} > "$WORK/section.md"
cat "$WORK/section.md"
[ "${LOSSY_DOC:-1}" = 1 ] || exit 0
bench_put_section "$SECTION" "$WORK/section.md"
