#!/usr/bin/env bash
# wan.sh — emulated WAN between sites, each site a network namespace, for fleet tests.
# Nothing is configured in the root namespace: links are veth pairs created directly between
# two sites' namespaces, with addresses that exist only there.
#
#   wan.sh up                          create a lab; prints WAN_ENV=<dir>/wan.env and the
#                                      other KEY=VALUE lines of that file
#   wan.sh site ENV NAME [NS]          new namespace nbw-<id>-NAME (lo up), or adopt the
#                                      existing namespace NS (e.g. a PXE lab's server ns);
#                                      prints SITE_<NAME>_NS=...
#   wan.sh link ENV S1 S2 RTT_MS [RATE_MBIT|-] [LOSS_PCT]
#                                      veth S1<->S2 with a /30, RTT/2 ms one-way delay added
#                                      on each receiving side (wan_delay), optional tbf rate
#                                      limit on both egress ends and random loss on both
#                                      ingress ends; prints LINK_<S1>_<S2>_<S1>=ip,
#                                      LINK_<S1>_<S2>_<S2>=ip, LINK_<S1>_<S2>_IF=ifname
#   wan.sh cut ENV S1 S2 [down|drop]   partition the link: both ends link down (default;
#                                      "unreachable" at once) or DROP on both ingresses
#                                      (senders see timeouts)
#   wan.sh heal ENV S1 S2              undo cut (either kind)
#   wan.sh check ENV                   exit 0 if every delayer is alive, else 1 naming them
#   wan.sh down ENV                    idempotent teardown (kill + reap delayers, delete
#                                      created namespaces, clean adopted ones, remove dir)
#   wan.sh gc [DIR]                    `down` every lab in DIR (default ${TMPDIR:-/tmp})
#                                      whose owner process died
#
# ENV is the wan.env path printed by `up`. Site names: [a-z][a-z0-9]{0,11}; in keys they are
# upper-cased. A pair of sites has at most one link; S1/S2 order does not matter for
# cut/heal. Links and sites are added to wan.env as they are made.
#
# Keys in wan.env: WAN_ENV WAN_ID WAN_DIR WAN_DELAY_BIN WAN_OWNER_PID WAN_OWNER_START,
#   SITE_<NAME>_NS, LINK_<S1>_<S2>_<S1>, LINK_<S1>_<S2>_<S2>, LINK_<S1>_<S2>_IF.
# Internal state (same dir): sites, links, delayers ("PID START NS IF QUEUE LOG" a line),
#   delay-*.log (each delayer's stderr), lock.
#
# Addressing: link number K (0..63) of lab ID gets 172.(16+H).L.(4K)/30, with H.L the low 12
# bits of ID: end S1 = .4K+1, end S2 = .4K+2. Disjoint from tests/pxe/lab.sh's 10.X.Y.0/24.
# IPv6 is disabled on the WAN interfaces, so no traffic can bypass the (IPv4) delay rules.
# NFQUEUE numbers: ((ID>>12)&255)*256 + 2K (S1 side) / 2K+1 (S2 side), per namespace.
#
# A dead delayer blackholes its side of the link (NFQUEUE without --queue-bypass, on
# purpose: a test must not silently run without the delay it asked for); `check` finds it.
#
# Environment: WAN_DELAY_BIN (default ${CARGO_TARGET_DIR:-<repo>/target}/debug/wan_delay),
# WAN_KEEP=1 (down keeps the lab dir), WAN_OWNER_PID (owner recorded by `up`; default the
# caller = wan.sh's parent), TMPDIR (where the lab dir is made).
#
# Requirements: root, iproute2 (ip, tc), iptables, util-linux (setsid, flock), procps
# (sysctl), and the wan_delay binary (cargo build -p netboot-tests --bins). A missing
# prerequisite is an error naming the Debian package, never a silent skip.
#
# Exit status: 0 ok, 1 failure (partial work of the failed command is undone), 2 usage or
# missing prerequisite.
set -euo pipefail

WAN_SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WAN_REPO=$(cd "$WAN_SCRIPT_DIR/../.." && pwd)

wan__err() { echo "wan: ERROR: $*" >&2; }
wan__log() { echo "wan: $*" >&2; }
wan__die() { # wan__die CODE MSG
    local code=$1
    shift
    wan__err "$*"
    exit "$code"
}
wan__usage() {
    sed -n '2,/^# Exit status/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# wan__need CMD PACKAGE
wan__need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    wan__die 2 "'$1' not found — install the Debian package: apt-get install $2"
}

wan__prereqs() {
    [[ $EUID -eq 0 ]] || wan__die 2 "wan.sh needs root (network namespaces, iptables, tc)"
    wan__need ip iproute2
    wan__need tc iproute2
    wan__need iptables iptables
    wan__need setsid util-linux
    wan__need flock util-linux
    wan__need sysctl procps
    wan__need awk mawk
}

wan__delay_bin() {
    local bin=${WAN_DELAY_BIN:-${CARGO_TARGET_DIR:-$WAN_REPO/target}/debug/wan_delay}
    [[ -x $bin ]] || wan__die 2 "the wan_delay binary is missing at $bin: run \`cargo build -p netboot-tests --bins\` (or set WAN_DELAY_BIN)"
    echo "$bin"
}

# wan__starttime PID — process start time (clock ticks since boot); empty if gone.
wan__starttime() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    st=${st##*) }
    awk '{ print $20 }' <<<"$st"
}

# wan__gone PID — true when PID no longer exists (or is a zombie nobody reaped yet).
wan__gone() {
    local st
    [[ -r /proc/$1/stat ]] || return 0
    st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
    [[ -z $st || $st == Z || $st == X ]]
}

# wan__kill_wait SECONDS PID... — TERM, wait up to SECONDS, then KILL; wait until gone.
wan__kill_wait() {
    local secs=$1 pid left i
    shift
    [[ $# -gt 0 ]] || return 0
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < secs * 20; i++)); do
        left=0
        for pid in "$@"; do wan__gone "$pid" || left=1; done
        [[ $left -eq 0 ]] && return 0
        sleep 0.05
    done
    for pid in "$@"; do
        if ! wan__gone "$pid"; then
            wan__err "pid $pid did not stop on TERM in ${secs}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for ((i = 0; i < 100; i++)); do
        left=0
        for pid in "$@"; do wan__gone "$pid" || left=1; done
        [[ $left -eq 0 ]] && return 0
        sleep 0.05
    done
    wan__err "pids still present after KILL: $*"
}

# wan__load ENVFILE — import WAN_* from the file (no eval), check the lab dir, take the lock.
wan__load() {
    local env=$1 k v
    [[ -r $env ]] || wan__die 2 "cannot read wan env file '$env' (from \`wan.sh up\`)"
    while IFS='=' read -r k v; do
        [[ $k =~ ^WAN_[A-Z_]+$ ]] || continue
        printf -v "$k" '%s' "$v"
    done <"$env"
    [[ -n ${WAN_ID:-} && -n ${WAN_DIR:-} && -d $WAN_DIR ]] || wan__die 2 "'$env' is not a wan.env file"
    WAN_ENV=$env
    exec 9>"$WAN_DIR/lock"
    flock 9
}

wan__check_name() {
    [[ $1 =~ ^[a-z][a-z0-9]{0,11}$ ]] || wan__die 2 "bad site name '$1' (want [a-z][a-z0-9]{0,11})"
}

wan__upper() { tr '[:lower:]' '[:upper:]' <<<"$1"; }

# wan__site_ns NAME — the site's namespace (fails if no such site)
wan__site_ns() {
    local n ns _adopted
    while read -r n ns _adopted; do
        [[ $n == "$1" ]] && {
            echo "$ns"
            return 0
        }
    done <"$WAN_DIR/sites"
    wan__die 2 "no site '$1' in lab $WAN_ID (wan.sh site ENV $1 first)"
}

# wan__find_link S1 S2 — sets L_IDX L_S1 L_S2 L_IF (either order); fails if none
wan__find_link() {
    local idx s1 s2 ifn rest
    while read -r idx s1 s2 ifn rest; do
        if [[ ($s1 == "$1" && $s2 == "$2") || ($s1 == "$2" && $s2 == "$1") ]]; then
            L_IDX=$idx L_S1=$s1 L_S2=$s2 L_IF=$ifn
            return 0
        fi
    done <"$WAN_DIR/links"
    return 1
}

wan__ipt() { # wan__ipt NS ARGS... — iptables in NS (waits for the global xtables lock)
    local ns=$1
    shift
    ip netns exec "$ns" iptables -w 10 "$@"
}

# wan__del_rules NS TAG — delete every raw-table rule whose comment matches the extended
# regex TAG exactly
wan__del_rules() {
    local ns=$1 tag=$2 line args
    [[ -e /run/netns/$ns ]] || return 0
    while read -r line; do
        read -ra args <<<"${line/#-A /-D }"
        wan__ipt "$ns" -t raw "${args[@]}" || wan__err "could not delete rule in $ns: $line"
    done < <(wan__ipt "$ns" -t raw -S 2>/dev/null | grep -E -- "--comment \"?$tag\"?( |$)" || true)
}

# ------------------------------------------------------------------------------------
wan_up() {
    [[ $# -eq 0 ]] || wan__usage
    wan__prereqs
    local bin id dir owner
    bin=$(wan__delay_bin)
    id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    dir=$(mktemp -d "${TMPDIR:-/tmp}/netboot-wan-$id.XXXXXX")
    owner=${WAN_OWNER_PID:-$PPID}
    : >"$dir/sites"
    : >"$dir/links"
    : >"$dir/delayers"
    {
        echo "WAN_ENV=$dir/wan.env"
        echo "WAN_ID=$id"
        echo "WAN_DIR=$dir"
        echo "WAN_DELAY_BIN=$bin"
        echo "WAN_OWNER_PID=$owner"
        echo "WAN_OWNER_START=$(wan__starttime "$owner")"
    } >"$dir/wan.env"
    cat "$dir/wan.env"
    wan__log "up: id=$id dir=$dir"
}

# ------------------------------------------------------------------------------------
wan_site() {
    [[ $# -eq 2 || $# -eq 3 ]] || wan__usage
    wan__prereqs
    wan__load "$1"
    local name=$2 ns adopted=0 key
    wan__check_name "$name"
    if awk -v n="$name" '$1 == n { f = 1 } END { exit !f }' "$WAN_DIR/sites"; then
        wan__die 2 "site '$name' already exists in lab $WAN_ID"
    fi
    if [[ $# -eq 3 ]]; then
        ns=$3
        [[ -e /run/netns/$ns ]] || wan__die 2 "namespace '$ns' does not exist (ip netns list)"
        if awk -v ns="$ns" '$2 == ns { f = 1 } END { exit !f }' "$WAN_DIR/sites"; then
            wan__die 2 "namespace '$ns' is already a site of lab $WAN_ID"
        fi
        adopted=1
    else
        ns="nbw-$WAN_ID-$name"
        ip netns add "$ns" || wan__die 1 "could not create namespace $ns"
        if ! ip -n "$ns" link set lo up; then
            ip netns del "$ns" || true
            wan__die 1 "could not bring up lo in $ns"
        fi
    fi
    echo "$name $ns $adopted" >>"$WAN_DIR/sites"
    key="SITE_$(wan__upper "$name")_NS"
    echo "$key=$ns" >>"$WAN_ENV"
    echo "$key=$ns"
    if [[ $adopted == 1 ]]; then wan__log "site $name: $ns (adopted)"; else wan__log "site $name: $ns"; fi
}

# ------------------------------------------------------------------------------------
# wan__start_delayer NS IF QUEUE DELAY_MS LOSS_PCT — start wan_delay in NS, wait until ready
wan__start_delayer() {
    local ns=$1 ifn=$2 q=$3 d=$4 loss=$5 log pid i
    log="$WAN_DIR/delay-$ns-$ifn.log"
    local extra=()
    [[ $loss != 0 ]] && extra=(--loss-pct "$loss")
    # own session; no inherited stdio or lock fd, so callers' pipes close when wan.sh exits
    ip netns exec "$ns" setsid "$WAN_DELAY_BIN" --queue "$q" --delay-ms "$d" "${extra[@]}" \
        </dev/null >>"$log" 2>&1 9>&- &
    pid=$!
    echo "$pid $(wan__starttime "$pid") $ns $ifn $q $log" >>"$WAN_DIR/delayers"
    for ((i = 0; i < 200; i++)); do
        grep -q "ready" "$log" 2>/dev/null && return 0
        if wan__gone "$pid"; then
            wait "$pid" 2>/dev/null || true
            wan__err "wan_delay (queue $q in $ns) exited before it was ready:"
            sed 's/^/    /' "$log" >&2
            return 1
        fi
        sleep 0.025
    done
    wan__err "wan_delay (queue $q in $ns) not ready after 5 s:"
    sed 's/^/    /' "$log" >&2
    return 1
}

# wan__unlink IDX IF NS1 NS2 — remove a link's pieces (veth, rules, delayers); idempotent
wan__unlink() {
    local idx=$1 ifn=$2 ns pid start _ns dif rest pids=()
    shift 2
    while read -r pid start _ns dif rest; do
        [[ $dif == "$ifn" && -n $start && $(wan__starttime "$pid") == "$start" ]] && pids+=("$pid")
    done <"$WAN_DIR/delayers"
    for ns in "$@"; do
        [[ -e /run/netns/$ns ]] || continue
        wan__del_rules "$ns" "nbw-$WAN_ID-l$idx"
        wan__del_rules "$ns" "nbw-$WAN_ID-l$idx-cut"
        ip -n "$ns" link del "$ifn" 2>/dev/null || true
    done
    wan__kill_wait 5 "${pids[@]}"
}

wan_link() {
    [[ $# -ge 4 && $# -le 6 ]] || wan__usage
    wan__prereqs
    wan__load "$1"
    local s1=$2 s2=$3 rtt=$4 rate=${5:--} loss=${6:-0}
    local ns1 ns2 idx ifn hi lo qbase q1 q2 net ip1 ip2 half k1 k2 kif
    [[ $s1 != "$s2" ]] || wan__die 2 "a link needs two different sites"
    ns1=$(wan__site_ns "$s1")
    ns2=$(wan__site_ns "$s2")
    [[ $rtt =~ ^[0-9]+(\.[0-9]+)?$ ]] || wan__die 2 "RTT_MS '$rtt' is not a number"
    [[ $rate == - || $rate =~ ^[0-9]+(\.[0-9]+)?$ ]] || wan__die 2 "RATE_MBIT '$rate' is not a number (or -)"
    [[ $loss =~ ^[0-9]+(\.[0-9]+)?$ ]] || wan__die 2 "LOSS_PCT '$loss' is not a number"
    [[ $rate == - ]] || awk -v r="$rate" 'BEGIN { exit !(r > 0) }' || wan__die 2 "RATE_MBIT must be > 0"
    awk -v l="$loss" 'BEGIN { exit !(l <= 100) }' || wan__die 2 "LOSS_PCT must be <= 100"
    if wan__find_link "$s1" "$s2"; then
        wan__die 2 "sites $s1 and $s2 are already linked ($L_IF)"
    fi
    idx=$(wc -l <"$WAN_DIR/links")
    ((idx < 64)) || wan__die 2 "at most 64 links per lab"
    ifn="nbw${WAN_ID}l$idx"
    hi=$(((16#$WAN_ID >> 8) & 15))
    lo=$((16#$WAN_ID & 255))
    qbase=$((((16#$WAN_ID >> 12) & 255) * 256))
    q1=$((qbase + 2 * idx))
    q2=$((q1 + 1))
    net="172.$((16 + hi)).$lo"
    ip1="$net.$((4 * idx + 1))"
    ip2="$net.$((4 * idx + 2))"
    half=$(awk -v r="$rtt" 'BEGIN { printf "%g", r / 2 }')
    # recorded first, so that down can clean a half-built link in an adopted namespace
    echo "$idx $s1 $s2 $ifn $ns1 $ns2 $ip1 $ip2 $rtt $rate $loss $q1 $q2" >>"$WAN_DIR/links"

    if ! wan__build_link; then
        wan__err "link $s1-$s2 failed; removing what it made"
        wan__unlink "$idx" "$ifn" "$ns1" "$ns2"
        # keep the line (its number, i.e. its addresses, is not reused) but free the pair
        awk -v i="$idx" '$1 == i { $2 = "-"; $3 = "-" } { print }' "$WAN_DIR/links" >"$WAN_DIR/links.new"
        mv "$WAN_DIR/links.new" "$WAN_DIR/links"
        exit 1
    fi
    k1="LINK_$(wan__upper "$s1")_$(wan__upper "$s2")"
    kif="${k1}_IF=$ifn"
    k2="${k1}_$(wan__upper "$s2")=$ip2"
    k1="${k1}_$(wan__upper "$s1")=$ip1"
    printf '%s\n' "$k1" "$k2" "$kif" | tee -a "$WAN_ENV"
    wan__log "link $s1-$s2: $ifn $ip1 <-> $ip2 rtt=${rtt}ms rate=${rate}mbit loss=${loss}%"
}

# uses wan_link's locals (bash dynamic scope)
wan__build_link() {
    local ns q burst limit
    ip -n "$ns1" link add "$ifn" type veth peer name "$ifn" netns "$ns2" || return
    for ns in "$ns1" "$ns2"; do
        # IPv4 only: no IPv6 (link-local) path that would bypass the iptables delay rule
        ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ifn.disable_ipv6=1" || return
    done
    ip -n "$ns1" addr add "$ip1/30" dev "$ifn" || return
    ip -n "$ns2" addr add "$ip2/30" dev "$ifn" || return
    if [[ $rate != - ]]; then
        # burst: 4 ms of rate (>= 2 full frames); queue: 100 ms of rate (>= 3 bursts)
        burst=$(awk -v r="$rate" 'BEGIN { b = r * 1e6 / 8 * 0.004; if (b < 3028) b = 3028; printf "%d", b }')
        limit=$(awk -v r="$rate" -v b="$burst" 'BEGIN { l = r * 1e6 / 8 * 0.1; if (l < 3 * b) l = 3 * b; printf "%d", l }')
        for ns in "$ns1" "$ns2"; do
            tc -n "$ns" qdisc replace dev "$ifn" root tbf rate "${rate}mbit" burst "$burst" limit "$limit" || return
        done
    fi
    if awk -v r="$rtt" -v l="$loss" 'BEGIN { exit !(r > 0 || l > 0) }'; then
        for ns in "$ns1" "$ns2"; do
            if [[ $ns == "$ns1" ]]; then q=$q1; else q=$q2; fi
            wan__start_delayer "$ns" "$ifn" "$q" "$half" "$loss" || return
            wan__ipt "$ns" -t raw -A PREROUTING -i "$ifn" -m comment --comment "nbw-$WAN_ID-l$idx" \
                -j NFQUEUE --queue-num "$q" || return
        done
    fi
    ip -n "$ns1" link set "$ifn" up || return
    ip -n "$ns2" link set "$ifn" up || return
}

# ------------------------------------------------------------------------------------
wan_cut() {
    [[ $# -eq 3 || $# -eq 4 ]] || wan__usage
    wan__prereqs
    wan__load "$1"
    local mode=${4:-down} ns tag
    wan__find_link "$2" "$3" || wan__die 2 "no link between $2 and $3"
    case $mode in
    down)
        for ns in $(wan__link_nss); do ip -n "$ns" link set "$L_IF" down; done
        ;;
    drop)
        tag="nbw-$WAN_ID-l$L_IDX-cut"
        for ns in $(wan__link_nss); do
            wan__ipt "$ns" -t raw -C PREROUTING -i "$L_IF" -m comment --comment "$tag" -j DROP 2>/dev/null ||
                wan__ipt "$ns" -t raw -I PREROUTING 1 -i "$L_IF" -m comment --comment "$tag" -j DROP
        done
        ;;
    *) wan__die 2 "cut mode must be 'down' or 'drop', not '$mode'" ;;
    esac
    wan__log "cut $L_S1-$L_S2 ($mode)"
}

wan__link_nss() { # namespaces of link L_IDX
    awk -v i="$L_IDX" '$1 == i { print $5, $6 }' "$WAN_DIR/links"
}

wan_heal() {
    [[ $# -eq 3 ]] || wan__usage
    wan__prereqs
    wan__load "$1"
    local ns
    wan__find_link "$2" "$3" || wan__die 2 "no link between $2 and $3"
    for ns in $(wan__link_nss); do
        wan__del_rules "$ns" "nbw-$WAN_ID-l$L_IDX-cut"
        ip -n "$ns" link set "$L_IF" up
    done
    wan__log "healed $L_S1-$L_S2"
}

# ------------------------------------------------------------------------------------
wan_check() {
    [[ $# -eq 1 ]] || wan__usage
    wan__load "$1"
    local pid start ns ifn q log n=0 dead=0
    while read -r pid start ns ifn q log; do
        [[ $pid =~ ^[0-9]+$ ]] || continue
        n=$((n + 1))
        if [[ -z $start || $(wan__starttime "$pid") != "$start" ]] || wan__gone "$pid"; then
            dead=$((dead + 1))
            wan__err "delayer pid $pid (queue $q, $ifn in $ns) is dead: traffic into $ns on $ifn is blackholed; its log:"
            sed 's/^/    /' "$log" >&2 || true
        fi
    done <"$WAN_DIR/delayers"
    [[ $dead -eq 0 ]] || exit 1
    echo "ok: $n delayers alive"
}

# ------------------------------------------------------------------------------------
wan_down() {
    [[ $# -eq 1 ]] || wan__usage
    local env=$1
    if [[ ! -e $env ]]; then
        wan__log "down: $env is gone (already down)"
        return 0
    fi
    wan__prereqs
    wan__load "$env"
    local pid start ns ifn q log name adopted idx pids=() p
    while read -r pid start ns ifn q log; do
        [[ $pid =~ ^[0-9]+$ && -n $start ]] || continue
        if [[ $(wan__starttime "$pid") == "$start" ]]; then
            pids+=("$pid")
        fi
    done <"$WAN_DIR/delayers"
    wan__kill_wait 5 "${pids[@]}"
    while read -r name ns adopted; do
        [[ -e /run/netns/$ns ]] || continue
        if [[ $adopted == 1 ]]; then
            # not ours: remove only what this lab added
            while read -r idx ifn; do
                ip -n "$ns" link del "$ifn" 2>/dev/null || true
            done < <(awk -v ns="$ns" '$5 == ns || $6 == ns { print $1, $4 }' "$WAN_DIR/links")
            wan__del_rules "$ns" "nbw-$WAN_ID-l[0-9]+(-cut)?"
        else
            pids=()
            while read -r p; do [[ $p =~ ^[0-9]+$ ]] && pids+=("$p"); done < <(ip netns pids "$ns" 2>/dev/null)
            wan__kill_wait 5 "${pids[@]}"
            ip netns del "$ns" || wan__err "could not delete namespace $ns"
        fi
    done <"$WAN_DIR/sites"
    : >"$WAN_DIR/delayers"
    if [[ ${WAN_KEEP:-0} == 1 ]]; then
        touch "$WAN_DIR/down"
        wan__log "down: $WAN_ID (kept $WAN_DIR)"
    else
        rm -rf "$WAN_DIR"
        wan__log "down: $WAN_ID"
    fi
}

# ------------------------------------------------------------------------------------
wan_gc() {
    [[ $# -le 1 ]] || wan__usage
    local dir=${1:-${TMPDIR:-/tmp}} env owner start
    for env in "$dir"/netboot-wan-*/wan.env; do
        [[ -f $env ]] || continue
        [[ -e $(dirname "$env")/down ]] && continue
        owner=$(sed -n 's/^WAN_OWNER_PID=//p' "$env")
        start=$(sed -n 's/^WAN_OWNER_START=//p' "$env")
        if [[ -n $owner && -n $start && $(wan__starttime "$owner") == "$start" ]]; then
            continue
        fi
        wan__log "gc: stale lab $(dirname "$env")"
        WAN_KEEP=0 "${BASH_SOURCE[0]}" down "$env" || wan__err "gc: down $env failed"
    done
}

# ------------------------------------------------------------------------------------
cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
up) wan_up "$@" ;;
site) wan_site "$@" ;;
link) wan_link "$@" ;;
cut) wan_cut "$@" ;;
heal) wan_heal "$@" ;;
check) wan_check "$@" ;;
down) wan_down "$@" ;;
gc) wan_gc "$@" ;;
*) wan__usage ;;
esac
