#!/usr/bin/env bash
# A slow middle site: one release to 4 sites behind an origin, first with every link at the
# same rate, then with one site's link (M) throttled; how much later the other sites finish.
# Issue 14: the sites behind M should finish within 1.3× of their unthrottled time.
#
#   bash tests/bench/throttled.sh          (as root)
#   THROTTLED_SIZE_MIB=N    release size (default 128)
#   THROTTLED_RATE_MBIT=R   rate of every link (default 25)
#   THROTTLED_SLOW_MBIT=S   M's link rate in the throttled run (default 5)
#   THROTTLED_SITE=NAME     the throttled site M (default s2; s1 with THROTTLED_FED=1)
#   THROTTLED_FED=1         the slow site fed straight by the origin: the origin and every site
#                           are each other's peers (not only the origin and s1), M is s1, the
#                           site nearest the origin, and the section is throttled-fed
#   THROTTLED_BIN=PATH      measure this netboot binary (e.g. a copy of main's release build,
#                           the "before") instead of building the checkout's
#   THROTTLED_DOC=0         print the section but do not write docs/benchmarks.md
#   THROTTLED_QUIET=0       do not wait for an idle machine before each run
#   THROTTLED_KEEP=1        keep the work dir (logs, statuses) in /var/tmp
#
# Topology (tests/wan/wan.sh, as tests/bench/fleet.sh): a `core` router namespace and five
# site namespaces, the origin and s1..s4, each joined to the core by its own link (tbf on both
# ends, NFQUEUE delayer on both receiving ends): round trips origin 45 ms, s1..s4 2, 20, 30,
# 40 ms; site to site = the sum of both links'. The chain forms as in the 8-site benchmark:
# each node has one upload slot, every site asks the nearest holder first and turns to the
# next when refused. The origin's only [fleet] peer is s1 (a hub that feeds one regional
# node; the others learn of the release from s1), so the chain starts origin → s1; s2 is
# nearest to s1 (22 ms) and usually takes s1's slot, s3 and s4 follow on: origin → s1 → s2 →
# s3 → s4, M (s2) in the middle. Who takes a slot is a race (who asks first), so the
# who-sent-what tables show the chain each run actually formed. In the throttled run M's link is changed (`tc qdisc change` of the tbf on both
# of its ends, inside the lab's namespaces) to THROTTLED_SLOW_MBIT before the nodes start.
# Nothing is configured in the root namespace; all traffic stays in the lab's namespaces.
#
# netboot: the release build, five nodes, each with every other as a [fleet] peer, defaults
# otherwise (upload_slots 1); fresh data dirs each run. Time = from the start of `netboot
# publish --to` (origin's node over loopback in its namespace) until each site's node logs
# "accepted" for the release.
#
# Writes the results into docs/benchmarks.md between the throttled markers and prints them.
# Everything it starts is stopped and the lab removed (wan.sh down) on any exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MIB=${THROTTLED_SIZE_MIB:-128}
RATE_MBIT=${THROTTLED_RATE_MBIT:-25}
SLOW_MBIT=${THROTTLED_SLOW_MBIT:-5}
FED=${THROTTLED_FED:-0}
if [ "$FED" = 1 ]; then M=${THROTTLED_SITE:-s1} SECTION=throttled-fed; else M=${THROTTLED_SITE:-s2} SECTION=throttled; fi
ORIGIN_RTT=45
SITES=(s1 s2 s3 s4)
SITE_RTTS=(2 20 30 40)
FLEET_PORT=7311
STATUS_PORT=8080
BENCH=throttled.sh
# shellcheck source=lib.sh
source tests/bench/lib.sh
bench_need_root "it creates network namespaces"
[[ " ${SITES[*]} " == *" $M "* ]] || bench_die "THROTTLED_SITE must be one of ${SITES[*]}"
bench_install curl jq iproute2 iptables iputils-ping util-linux procps
if [ -n "${THROTTLED_BIN:-}" ]; then
    BIN=$THROTTLED_BIN
    REV="$("$BIN" --version 2>/dev/null | tr -d '\n') at $BIN (given)"
else
    bench_build
fi
cargo build --release --locked -q -p netboot-tests --bin wan_delay
export WAN_DELAY_BIN="$PWD/target/release/wan_delay"
WAN=tests/wan/wan.sh

WORK=$(mktemp -d /var/tmp/netboot-throttled.XXXXXX)
chmod 755 "$WORK"
WAN_ENV=
NODE_PIDS=()
log() { echo "$BENCH: $*" >&2; }
cleanup() {
    set +e
    for p in "${NODE_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${NODE_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    [ -n "$WAN_ENV" ] && "$WAN" down "$WAN_ENV" >/dev/null 2>&1
    [ "${THROTTLED_KEEP:-0}" = 1 ] && { log "kept $WORK"; return; }
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the lab ------------------------------------------------------------------------------
bench_core_lab
# set_rate SITE MBIT: the tbf on both ends of SITE's link to the core, burst and queue sized
# as wan.sh sizes them (4 ms and 100 ms of the rate).
set_rate() {
    local burst limit ns
    burst=$(awk -v r="$2" 'BEGIN { b = r * 1e6 / 8 * 0.004; if (b < 3028) b = 3028; printf "%d", b }')
    limit=$(awk -v r="$2" -v b="$burst" 'BEGIN { l = r * 1e6 / 8 * 0.1; if (l < 3 * b) l = 3 * b; printf "%d", l }')
    for ns in "${NS[$1]}" "$CORE_NS"; do
        tc -n "$ns" qdisc change dev "${IFACE[$1]}" root tbf rate "${2}mbit" burst "$burst" limit "$limit"
    done
}
quiet() { [ "${THROTTLED_QUIET:-1}" = 1 ] || return 0; bench_quiet 2 0.3 90; }
now() { date +%s.%N; }

# ---- netboot nodes ------------------------------------------------------------------------
SIZE=$((SIZE_MIB << 20))
"$BIN" keygen --out "$WORK/publisher.key" > "$WORK/publisher.pub" 2>/dev/null
PUB=$(cat "$WORK/publisher.pub")
declare -A NID
for s in "${ALL[@]}"; do
    mkdir -p "$WORK/$s"
    NID[$s]=$("$BIN" node-id --data-dir "$WORK/$s/data" 2>/dev/null)
done
# peers_of SITE: the sites SITE lists as [fleet] peers (the origin and s1 each other, or with
# THROTTLED_FED=1 the origin and every site; the sites among themselves).
peers_of() {
    local p
    case $1 in
    origin) if [ "$FED" = 1 ]; then printf "%s\n" "${SITES[@]}"; else echo s1; fi ;;
    *)
        if [ "$FED" = 1 ] || [ "$1" = s1 ]; then echo origin; fi
        for p in "${SITES[@]}"; do [ "$p" = "$1" ] || echo "$p"; done
        ;;
    esac
}
for s in "${ALL[@]}"; do
    peers=()
    for p in $(peers_of "$s"); do peers+=("\"${NID[$p]}@${IP[$p]}:$FLEET_PORT\""); done
    bench_node_toml "$WORK/$s/node.toml" "$PUB"
    cat >> "$WORK/$s/node.toml" <<TOML
[tftp]
enabled = false
[http]
listen = "127.0.0.1:$STATUS_PORT"
[fleet]
listen = "0.0.0.0:$FLEET_PORT"
peers = [$(IFS=,; echo "${peers[*]}")]
TOML
done
status() { in_ns "$1" curl -sf --max-time 5 "http://127.0.0.1:$STATUS_PORT/fleet/status.json"; }

start_nodes() {
    local s p n ok
    NODE_PIDS=()
    for s in "${ALL[@]}"; do
        find "$WORK/$s/data" -mindepth 1 -maxdepth 1 ! -name fleet.key -exec rm -rf {} +
        ip netns exec "${NS[$s]}" "$BIN" node --config "$WORK/$s/node.toml" > "$WORK/$s/node.log" 2>&1 &
        p=$!
        NODE_PIDS+=("$p")
    done
    for s in "${ALL[@]}"; do
        for n in $(seq 300); do grep -q "netboot node up" "$WORK/$s/node.log" && break; sleep 0.1; done
        grep -q "netboot node up" "$WORK/$s/node.log" || { log "node $s did not start:"; cat "$WORK/$s/node.log" >&2; exit 1; }
    done
    for n in $(seq 120); do
        ok=1
        for s in "${ALL[@]}"; do
            [ "$(status "$s" | jq '[.peers[] | select(.connected and .rtt_ms != null)] | length')" = "$(peers_of "$s" | wc -l)" ] || { ok=0; break; }
        done
        [ $ok = 1 ] && return 0
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
LB_SLOW=$(awk -v b="$SIZE" -v r="$SLOW_MBIT" 'BEGIN { printf "%.2f", b * 8 / (r * 1e6) }')
DEADLINE=$(awk -v l="$LB_SLOW" 'BEGIN { printf "%d", l * 3 + 120 }')

# run NAME: one distribution; leaves $WORK/NAME/done ("site seconds" lines), statuses, logs.
run() {
    local name=$1 dir="$WORK/$1" s t0 t left line still
    mkdir -p "$dir"
    head -c "$SIZE" /dev/urandom > "$WORK/big.bin"
    start_nodes
    quiet
    t0=$(now)
    in_ns origin "$BIN" publish --key "$WORK/publisher.key" --to "${NID[origin]}@127.0.0.1:$FLEET_PORT" \
        --name bench --file "big.bin=$WORK/big.bin" > "$dir/publish.log" 2>&1 &
    local pub_pid=$!
    left=("${SITES[@]}")
    : > "$dir/done"
    while [ ${#left[@]} -gt 0 ]; do
        sleep 0.5
        t=$(now)
        still=()
        for s in "${left[@]}"; do
            line=$(grep -m1 "accepted bench" "$WORK/$s/node.log" || true)
            if [ -n "$line" ]; then
                echo "$s $(awk -v a="$t0" -v b="$(date -d "${line%% *}" +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" >> "$dir/done"
            else
                still+=("$s")
            fi
        done
        left=("${still[@]}")
        if awk -v a="$t0" -v b="$t" -v d="$DEADLINE" 'BEGIN { exit !(b - a > d) }'; then
            log "run $name: not done after ${DEADLINE} s (left: ${left[*]})"
            break
        fi
    done
    wait "$pub_pid" || true
    for s in "${ALL[@]}"; do status "$s" > "$dir/$s.json" || echo '{}' > "$dir/$s.json"; cp "$WORK/$s/node.log" "$dir/$s.log"; done
    stop_nodes
    "$WAN" check "$WAN_ENV" >/dev/null 2>&1 || { log "a delayer died:"; "$WAN" check "$WAN_ENV" >&2; exit 1; }
}

START=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
run full; log "full rate: $(tr '\n' ' ' < "$WORK/full/done")"
set_rate "$M" "$SLOW_MBIT"
run slow; log "$M at $SLOW_MBIT Mbit/s: $(tr '\n' ' ' < "$WORK/slow/done")"
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- results ------------------------------------------------------------------------------
done_at() { awk -v s="$2" '$1 == s { print $2 }' "$WORK/$1/done"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
# who_sent RUN: MiB each site received from each other node, as its status reports.
who_sent() {
    local d="$WORK/$1" s p b
    printf '| site (link RTT) | done at |'; for p in "${ALL[@]}"; do printf ' from %s |' "$p"; done; echo
    printf '|---|---|'; for _ in "${ALL[@]}"; do printf -- '---|'; done; echo
    for s in "${SITES[@]}"; do
        printf '| %s (%s ms) | %s s |' "$s$( [ "$s" = "$M" ] && echo " = M")" "${RTT[$s]}" "$(done_at "$1" "$s")"
        for p in "${ALL[@]}"; do
            if [ "$p" = "$s" ]; then printf ' – |'; continue; fi
            b=$(jq --arg id "${NID[$p]}" '[.peers[]? | select(.id == $id) | .received_bytes] | first // 0' "$d/$s.json")
            printf ' %s |' "$(mib "$b")"
        done
        echo
    done
}
decisions() {
    local d="$WORK/$1"
    echo "$(cat "$d"/*.log | grep -c 'switching from' || true) switches to a nearer peer, $(cat "$d"/*.log | grep -c 'stalled on' || true) stalls, $(cat "$d"/*.log | grep -c 'following .*copy as it grows' || true) follows of a still-fetching peer"
}
{
    echo "<!-- $SECTION:begin -->"
    if [ "$FED" = 1 ]; then
        echo "### A slow site fed by the origin: one ${SIZE_MIB} MiB release to 4 sites, ${RATE_MBIT} Mbit/s links, ${M} throttled to ${SLOW_MBIT} Mbit/s"
    else
        echo "### A slow middle site: one ${SIZE_MIB} MiB release to 4 sites, ${RATE_MBIT} Mbit/s links, ${M} throttled to ${SLOW_MBIT} Mbit/s"
    fi
    echo
    defaults=128255s2; [ "$FED" = 1 ] && defaults=128255s1
    echo "Command: \`$( [ -z "${THROTTLED_BIN:-}" ] || echo "THROTTLED_BIN=$THROTTLED_BIN ")$( [ "$FED" = 1 ] && echo "THROTTLED_FED=1 ")bash tests/bench/throttled.sh\`$( [ "$SIZE_MIB$RATE_MBIT$SLOW_MBIT$M" = "$defaults" ] || echo " (THROTTLED_SIZE_MIB=$SIZE_MIB THROTTLED_RATE_MBIT=$RATE_MBIT THROTTLED_SLOW_MBIT=$SLOW_MBIT THROTTLED_SITE=$M)") — $(date -u +%Y-%m-%d), netboot $REV, $(nproc) cores, $(uname -r), one run each; load average before/after: $LOAD0 / $LOAD1; took $(( ($(date +%s) - START) / 60 )) min."
    echo
    echo "Links to the core router: origin ${ORIGIN_RTT} ms; ${SITES[*]} ${SITE_RTTS[*]} ms (round trip), each ${RATE_MBIT} Mbit/s; in the throttled run ${M}'s link ${SLOW_MBIT} Mbit/s. Lower bound = size ÷ ${RATE_MBIT} Mbit/s = **${LB} s** (${M} itself: ${LB_SLOW} s). Peers: $( [ "$FED" = 1 ] && echo "the origin and every site, each other's" || echo "the origin and s1 each other's, the sites each other's")."
    echo
    echo "| site | done at, all links ${RATE_MBIT} Mbit/s | done at, ${M} at ${SLOW_MBIT} Mbit/s | ratio |"
    echo "|---|---|---|---|"
    for s in "${SITES[@]}"; do
        a=$(done_at full "$s"); b=$(done_at slow "$s")
        echo "| $s$( [ "$s" = "$M" ] && echo " (M)") | ${a:-not done} s | ${b:-not done} s | $(bench_ratio "${b:-—}" "${a:-—}") |"
    done
    echo "| target (issue 14), sites other than M | | | ≤ 1.30× |"
    echo
    echo "Who sent what, all links at ${RATE_MBIT} Mbit/s (MiB received, verified, by the row's site from the column's):"
    echo
    who_sent full
    echo
    echo "Fetch decisions: $(decisions full)."
    echo
    echo "Who sent what, ${M} at ${SLOW_MBIT} Mbit/s:"
    echo
    who_sent slow
    echo
    echo "Fetch decisions: $(decisions slow)."
    echo "<!-- $SECTION:end -->"
} > "$WORK/section.md"
cat "$WORK/section.md"
[ "${THROTTLED_DOC:-1}" = 1 ] || exit 0
bench_put_section "$SECTION" "$WORK/section.md"
