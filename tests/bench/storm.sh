#!/usr/bin/env bash
# Boot storm: many machines powered on at once against one site server.
#
# 1. Simulated clients (tests/src/bin/storm.rs): CLIENTS PXE clients start together, each does
#    DHCP (server mode: DISCOVER/OFFER/REQUEST/ACK), TFTP of the boot file the ACK names (the
#    iPXE binary undionly.kpxe, blksize 1432) and one HTTP GET of an MB-MiB file, each from
#    the address it leased. Against
#      netboot  `netboot node`, DHCP server mode, TFTP and HTTP from its verified store
#      peer     dnsmasq (DHCP server + TFTP, `no-ping`, otherwise defaults) + nginx (sendfile)
#    Reported per server: clients that failed (and why), per-client time p50/p99 (and its
#    DHCP/TFTP/HTTP parts), wall time of the storm, server CPU seconds (cpuacct group) and peak
#    RSS and anonymous RSS (sums over the server's processes, sampled every 0.2 s).
# 2. Real clients: QEMU_CLIENTS (default 5) QEMU BIOS PXE clients (TCG) booting at once in the
#    PXE lab (tests/pxe/lab.sh, site DHCP + proxy-DHCP, as tests/bench/boot.sh), against the node
#    (tests/pxe/netboot-server.sh proxy) and the peer (tests/bench/peer-dnsmasq-nginx.sh ipxe).
#
#   bash tests/bench/storm.sh [CLIENTS] [MB]     (as root; defaults 300 and 50)
#   STORM_QEMU=0 skips part 2; QEMU_CLIENTS=N sets its size; STORM_SECTION names the section
#   of docs/benchmarks.md it writes (default storm).
#
# Topology of part 1 (nothing in the root namespace): a server namespace (10.77.0.1/16 on a
# veth) and a client namespace (10.77.0.2/16) where the generator runs; the pool
# 10.77.128.1–10.77.131.254 is routed `local` to the client namespace's lo, so each simulated
# client binds its own leased address. Every server gets a fresh start; everything started is
# stopped and both namespaces removed on any exit. Writes its section of docs/benchmarks.md.
# A benchmark, not a test: nothing is asserted on the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
# The settings this run was given, for the command line in the report.
CMD_ENV=$(for v in STORM_QEMU QEMU_CLIENTS STORM_SECTION; do [[ -z ${!v:-} ]] || printf '%s=%s ' "$v" "${!v}"; done)
CLIENTS=${1:-300}
MB=${2:-50}
QEMU_CLIENTS=${QEMU_CLIENTS:-5}
SECTION=${STORM_SECTION:-storm}
[[ $CLIENTS =~ ^[1-9][0-9]*$ && $CLIENTS -le 1000 && $MB =~ ^[1-9][0-9]*$ ]] ||
    { echo "usage: storm.sh [CLIENTS (1-1000)] [MB]" >&2; exit 2; }
BENCH=storm.sh
# shellcheck source=lib.sh
source tests/bench/lib.sh
bench_need_root "it creates network namespaces and cgroups"
START=$(date +%s)
bench_install --stop nginx dnsmasq-base nginx ipxe iproute2 qemu-system-x86 ipxe-qemu seabios \
    busybox-static cpio python3
bench_cgroup
# The node and the load generator in one build: built apart, cargo would unify features
# differently and rebuild the node's dependencies twice.
cargo build --release --locked -q -p netboot-cli -p netboot-tests --bin netboot --bin storm
BIN="$PWD/target/release/netboot" STORM="$PWD/target/release/storm"
REV=$(git rev-parse --short HEAD)
[ -z "$(git status --porcelain -- node proto cli tests/src Cargo.lock)" ] || REV="$REV + uncommitted changes"

bench_netns # server namespace $NS, work dir $WORK, cleanup on exit
CNS="nbstorm-$ID"
cleanup() {
    bench_cleanup
    ip netns del "$CNS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$CNS"
ip -n "$CNS" link set lo up
ip -n "$NS" link add st0 type veth peer name st1 netns "$CNS"
ip -n "$NS" addr add 10.77.0.1/16 dev st0
ip -n "$CNS" addr add 10.77.0.2/16 dev st1
ip -n "$NS" link set st0 up
ip -n "$CNS" link set st1 up
ip -n "$CNS" route add local 10.77.128.0/22 dev lo
SERVER_IP=10.77.0.1 POOL_START=10.77.128.1 POOL_END=10.77.131.254 MASK=255.255.0.0

# The data: the iPXE binary PXE ROMs load, and a big file as the HTTP payload.
mkdir -p "$WORK/tftp" "$WORK/http"
cp /usr/lib/ipxe/undionly.kpxe "$WORK/tftp/"
head -c "$((MB << 20))" /dev/urandom >"$WORK/http/big.bin"
cp "$BIN" "$WORK/netboot" # a private copy: another build cannot swap it mid-run

# wait_listen PROTO PORT: until something in the server namespace listens there (30 s).
wait_listen() {
    for _ in $(seq 150); do
        in_ns ss -Hln"${1:0:1}" "sport = :$2" | grep -q . && return 0
        sleep 0.2
    done
    bench_die "nothing listens on $1 port $2 in the server namespace"
}

# rss_sampler GROUP FILE: every 0.2 s, the summed VmRSS and RssAnon (KiB) of the group's
# processes; their maxima are in FILE ("rss anon") when the sampler is stopped. RssAnon is what
# the server allocated; VmRSS also counts the file pages it has mapped.
rss_sampler() {
    local max=0 maxa=0 sum suma r a p
    trap 'echo "$max $maxa" >"$2"; exit 0' TERM
    while :; do
        sum=0 suma=0
        while read -r p; do
            read -r r a < <(awk '/^VmRSS/ { r = $2 } /^RssAnon/ { a = $2 } END { print r + 0, a + 0 }' "/proc/$p/status" 2>/dev/null || echo 0 0)
            sum=$((sum + ${r:-0})) suma=$((suma + ${a:-0}))
        done <"$CG/nbbench-$ID-$1/cgroup.procs"
        ((sum > max)) && max=$sum
        ((suma > maxa)) && maxa=$suma
        sleep 0.2
    done
}

# in_group NAME CMD...: runs CMD in the server namespace, inside the run's accounting group
# NAME from its first instruction (so the children it forks are counted too).
in_group() {
    local g="$CG/nbbench-$ID-$1"
    shift
    mkdir -p "$g"
    sh -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' sh "$g" ip netns exec "$NS" "$@" &
    PIDS+=($!)
    SERVER_PIDS+=($!)
}

start_netboot() {
    local d=$WORK/netboot-run key
    rm -rf "$d"
    mkdir -p "$d"
    key=$("$WORK/netboot" keygen --out "$d/k" 2>/dev/null)
    cat >"$d/node.toml" <<TOML
data_dir = "data"
trusted_publishers = ["$key"]
[dhcp]
mode = "server"
interface = "st0"
server_ip = "$SERVER_IP"
[dhcp.pool]
range_start = "$POOL_START"
range_end = "$POOL_END"
subnet_mask = "$MASK"
lease_file = "$d/leases.json"
[http]
listen = "$SERVER_IP:80"
TOML
    "$WORK/netboot" publish --config "$d/node.toml" --key "$d/k" --name ipxe --file "$WORK/tftp/undionly.kpxe" >/dev/null 2>&1
    "$WORK/netboot" publish --config "$d/node.toml" --key "$d/k" --name storm --file "big.bin=$WORK/http/big.bin" >/dev/null 2>&1
    in_group netboot "$WORK/netboot" node --config "$d/node.toml" >"$d/node.log" 2>&1
    HTTP_PATH=/images/storm/big.bin
}

start_peer() {
    local d=$WORK/peer-run
    rm -rf "$d"
    mkdir -p "$d"
    cat >"$d/dnsmasq.conf" <<CONF
port=0
interface=st0
bind-interfaces
user=root
group=root
log-facility=$d/dnsmasq.log
pid-file=$d/dnsmasq.pid
dhcp-leasefile=$d/dnsmasq.leases
dhcp-range=$POOL_START,$POOL_END,$MASK,1h
dhcp-boot=undionly.kpxe
no-ping
enable-tftp
tftp-root=$WORK/tftp
CONF
    bench_nginx_conf "$d" "$SERVER_IP:80" "$WORK/http"
    in_group peer dnsmasq --keep-in-foreground --conf-file="$d/dnsmasq.conf"
    in_group peer nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;'
    HTTP_PATH=/big.bin
}

# storm CASE: start CASE's server, run the generator against it, keep its results.
declare -A WALL CPU RSS ANON
storm() {
    local c=$1 c0 t0 t1 sampler
    bench_quiet 1 0.6 3
    SERVER_PIDS=()
    "start_$c"
    wait_listen udp 67
    wait_listen udp 69
    wait_listen tcp 80
    sleep 0.5
    rss_sampler "$c" "$WORK/$c.rss" &
    sampler=$!
    c0=$(cpu "$c")
    t0=$(date +%s.%N)
    ip netns exec "$CNS" "$STORM" --iface st1 --server "$SERVER_IP" --clients "$CLIENTS" \
        --http-path "$HTTP_PATH" --timeout 300 >"$WORK/$c.tsv" 2>"$WORK/$c.err" || true
    t1=$(date +%s.%N)
    CPU[$c]=$(awk -v a="$c0" -v b="$(cpu "$c")" 'BEGIN { printf "%.1f", b - a }')
    kill -TERM "$sampler"
    wait "$sampler" || true
    RSS[$c]=$(awk '{ printf "%.1f", $1 / 1024 }' "$WORK/$c.rss")
    ANON[$c]=$(awk '{ printf "%.1f", $2 / 1024 }' "$WORK/$c.rss")
    WALL[$c]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    kill "${SERVER_PIDS[@]}" 2>/dev/null || true
    wait "${SERVER_PIDS[@]}" 2>/dev/null || true
    echo "  $c: $(cat "$WORK/$c.err"), wall ${WALL[$c]} s, CPU ${CPU[$c]} s, peak RSS ${RSS[$c]} MiB (anonymous ${ANON[$c]} MiB)" >&2
}

UPTIME0=$(uptime)
for c in netboot peer; do storm "$c"; done
UPTIME1=$(uptime)

# pct CASE COLUMN P: the P-th percentile (nearest rank) of a column over the clients that
# booted; "—" when none did.
pct() {
    awk -F'\t' -v col="$2" '$2 == "ok" { print $col }' "$WORK/$1.tsv" | sort -n |
        awk -v p="$3" '{ v[NR] = $1 } END { if (NR == 0) print "—"; else { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; print v[i] } }'
}
okcount() { awk -F'\t' '$2 == "ok"' "$WORK/$1.tsv" | wc -l; }
why() {
    awk -F'\t' '$2 != "ok" { sub(/ after .*| at block .*|: [0-9]+ of .*/, "", $9); print $9 }' "$WORK/$1.tsv" |
        sort | uniq -c | sort -rn | head -n 3 | awk '{ n = $1; $1 = ""; printf "%s%d×%s", (NR > 1 ? "; " : ""), n, $0 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "—" || b == "—" || b == 0) print "—"; else printf "%.2f×", a / b }'; }
ver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null; }

# ---- part 2: QEMU clients at once ----------------------------------------------------------
QEMU_ROWS=""
if [[ ${STORM_QEMU:-1} != 0 ]]; then
    IMAGE="${NETBOOT_TEST_CACHE:-/var/cache/netboot-tests}/image"
    tests/pxe/build-boot-image.sh "$IMAGE" >&2
    # shellcheck source-path=SCRIPTDIR source=../pxe/lab.sh
    source tests/pxe/lab.sh
    export LAB_NO_TRAP=1 LAB_KEEP=0
    trap 'lab_down; cleanup' EXIT
    lab_up site
    lab_site_dhcp
    lab_ra_responder
    cp "$BIN" "$LAB_DIR/netboot"
    export NETBOOT_BIN="$LAB_DIR/netboot" NETBOOT_E2E_IMAGE=$IMAGE
    export NETBOOT_E2E_KERNEL_ARGS="console=ttyS0 quiet panic=-1"
    # One tap per VM on the lab's bridge (the lab's own tap is the first).
    TAPS=("$LAB_TAP") MACS=("$LAB_CLIENT_MAC")
    for i in $(seq 2 "$QEMU_CLIENTS"); do
        t="${LAB_TAP}q$i"
        ip -n "$LAB_NS_CLIENT" tuntap add dev "$t" mode tap
        ip -n "$LAB_NS_CLIENT" link set "$t" master "$LAB_BRIDGE"
        ip -n "$LAB_NS_CLIENT" link set "$t" up
        TAPS+=("$t") MACS+=("$(printf '%s:%02x' "${LAB_CLIENT_MAC%:*}" $((0x${LAB_CLIENT_MAC##*:} ^ i)))")
    done
    for c in netboot peer; do
        d="$LAB_DIR/q-$c"
        mkdir -p "$d"
        if [[ $c == netboot ]]; then
            lab_bg_in_server --log "$d/server.log" "$REPO/tests/pxe/netboot-server.sh" proxy \
                "$LAB_IFACE_SERVER" "$LAB_SERVER_IP" "$LAB_DHCP_START" "$LAB_DHCP_END" "$LAB_NETMASK" "$d"
        else
            lab_bg_in_server --log "$d/server.log" env PEER_DIR="$d/peer" "$REPO/tests/bench/peer-dnsmasq-nginx.sh" ipxe
        fi
        spid=$LAB_LAST_PID
        for r in udp:67 udp:69 tcp:80; do
            lab_wait_listen "$LAB_NS_SERVER" "${r%:*}" "${r#*:}" 60 || { tail -n 20 "$d/server.log" >&2; exit 1; }
        done
        sleep 0.3
        t0=$(date +%s.%N)
        vms=()
        for i in $(seq 0 $((QEMU_CLIENTS - 1))); do
            (LAB_TAP=${TAPS[$i]} LAB_CLIENT_MAC=${MACS[$i]} qemu_boot bios "$d/serial-$i.log" 600 >"$d/boot-$i.out" 2>"$d/boot-$i.err") &
            vms+=($!)
        done
        wait "${vms[@]}" || true
        wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
        lab_stop "$spid"
        pass=$(cat "$d"/boot-*.out | grep -c 'result=PASS' || true)
        times=$(cat "$d"/boot-*.out | sed -n 's/.* result=PASS elapsed=\([0-9.]*\).*/\1/p' | sort -n | paste -sd' ')
        echo "  qemu $c: $pass of $QEMU_CLIENTS PASS, times ${times:-none}, wall $wall s" >&2
        QEMU_ROWS+="| $c | $pass of $QEMU_CLIENTS | ${times:-—} | $(tr ' ' '\n' <<<"$times" | grep . | bench_median —) | $wall |"$'\n'
    done
fi
RUNTIME=$(($(date +%s) - START))

{
    echo "<!-- $SECTION:begin -->"
    echo "### Boot storm: $CLIENTS simulated PXE clients at once (DHCP → TFTP undionly.kpxe → HTTP $MB MiB)"
    echo
    echo "Command: \`${CMD_ENV}bash tests/bench/storm.sh $CLIENTS $MB\` — $(date -u +%Y-%m-%d), netboot $REV, $(nproc) cores, $(uname -r), one storm per server, $((RUNTIME / 60)) min in all."
    echo "\`uptime\` before: \`${UPTIME0#*load average: }\`, after: \`${UPTIME1#*load average: }\` (the machine is shared; load moves the absolute times)."
    echo "Peer: dnsmasq $(ver dnsmasq-base) (DHCP server + TFTP, \`no-ping\`, default \`tftp-max\` 50) + nginx $(ver nginx) (sendfile). Load generator: \`target/release/storm\` in its own namespace, one veth to the server's."
    echo
    echo "| server | clients booted | failures (why) | per-client p50 s | p99 s | DHCP p50 / p99 s | TFTP p50 / p99 s | HTTP p50 / p99 s | storm wall s | server CPU s | server peak RSS MiB | of it anonymous MiB |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for c in netboot peer; do
        n=$(okcount "$c")
        echo "| $c | $n of $CLIENTS | $((CLIENTS - n))$( [[ $n -eq $CLIENTS ]] || echo " ($(why "$c"))") | $(pct "$c" 6 50) | $(pct "$c" 6 99) | $(pct "$c" 3 50) / $(pct "$c" 3 99) | $(pct "$c" 4 50) / $(pct "$c" 4 99) | $(pct "$c" 5 50) / $(pct "$c" 5 99) | ${WALL[$c]} | ${CPU[$c]} | ${RSS[$c]} | ${ANON[$c]} |"
    done
    echo
    echo "netboot ÷ peer: per-client p50 $(ratio "$(pct netboot 6 50)" "$(pct peer 6 50)"), p99 $(ratio "$(pct netboot 6 99)" "$(pct peer 6 99)"), wall $(ratio "${WALL[netboot]}" "${WALL[peer]}"), CPU $(ratio "${CPU[netboot]}" "${CPU[peer]}"), peak RSS $(ratio "${RSS[netboot]}" "${RSS[peer]}")."
    if [[ -n $QEMU_ROWS ]]; then
        echo
        echo "$QEMU_CLIENTS QEMU (TCG) BIOS PXE clients booting at once to the initramfs's PASS marker (proxy-DHCP beside the lab's site DHCP server; iPXE ROM → iPXE script → kernel + initrd over HTTP; the peer is dnsmasq proxy-DHCP + TFTP + nginx):"
        echo
        echo "| server | PASS | seconds to PASS, each VM | median s | wall s |"
        echo "|---|---|---|---|---|"
        printf '%s' "$QEMU_ROWS"
    fi
    echo "<!-- $SECTION:end -->"
} >"$WORK/section.md"
cat "$WORK/section.md"
bench_put_section "$SECTION" "$WORK/section.md"
