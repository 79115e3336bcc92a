# Shared by the benchmark scripts in tests/bench (sourced, not run). Each script keeps its own
# set-up of what it measures; this holds only what they all do the same way: being root,
# installing the peers from Debian's packages, building the node once, the cpuacct check, a
# unique run id, the median, and writing a section into docs/benchmarks.md.
#
# The caller sets BENCH (its name, for messages) before sourcing, and runs from the checkout's
# top directory.

bench_die() { echo "$BENCH: $*" >&2; exit 1; }

# bench_need_root WHY: benchmarks create namespaces and cgroups.
bench_need_root() {
    [ "$(id -u)" -eq 0 ] || bench_die "run as root ($1)"
}

# bench_install [--stop SERVICE]... PACKAGE...: installs the Debian packages that are missing.
# Packages such as tftpd-hpa or nginx start a system service on install: --stop names it, so
# the benchmark's own copy (in its namespace, with its own config) is the only one measured.
bench_install() {
    local stop=() missing=() p
    while [ "${1:-}" = --stop ]; do stop+=("$2"); shift 2; done
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    for p in "${stop[@]}"; do service "$p" stop >/dev/null 2>&1 || true; done
}

# bench_build: the release build of the node (reused when up to date). Sets BIN, and REV, the
# commit measured (marked when the node's sources had uncommitted changes). NETBOOT_BIN=PATH
# measures that binary instead, built elsewhere (an older build, for a before/after).
bench_build() {
    if [ -n "${NETBOOT_BIN:-}" ]; then
        # Another build measured the same way (a before/after comparison): named in the docs.
        [ -x "$NETBOOT_BIN" ] || bench_die "NETBOOT_BIN=$NETBOOT_BIN is not an executable"
        BIN=$(realpath "$NETBOOT_BIN")
        REV="the binary $NETBOOT_BIN"
        return
    fi
    cargo build --release --locked -q -p netboot-cli
    BIN="$PWD/target/release/netboot"
    REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -z "$(git status --porcelain -- node proto cli Cargo.lock 2>/dev/null)" ] || REV="$REV + uncommitted changes"
}

# bench_cgroup: servers run in their own cpuacct groups, so CPU time covers every process and
# thread of a server (tftpd-hpa's forked children, nginx's workers, the node's threads).
CG=/sys/fs/cgroup/cpuacct
bench_cgroup() {
    [ -w "$CG" ] || bench_die "needs the cgroup v1 cpuacct controller at $CG"
}

# A short random id, so two runs never share a namespace, cgroup or file name.
bench_id() { head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# bench_wait_server PID LOG: after starting a boot server in the lab's server namespace, waits
# until it listens on DHCP, TFTP and HTTP (up to 60 s each) and is still running; on failure
# prints the tail of LOG and returns 1. Needs tests/pxe/lab.sh sourced.
bench_wait_server() {
    local r
    for r in udp:67 udp:69 tcp:80; do
        lab_wait_listen "$LAB_NS_SERVER" "${r%:*}" "${r#*:}" 60 || { tail -n 20 "$2" >&2; return 1; }
    done
    sleep 0.3
    ! lab__gone "$1" || { tail -n 20 "$2" >&2; return 1; }
}

# Report helpers. bench_ratio A B: "A/B×" to two places, "—" when either is missing or B is 0.
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "—" || b == "—" || b == 0) print "—"; else printf "%.2f×", a / b }'; }
# bench_loadstat LOAD...: "min / median / max" of the load averages given.
bench_loadstat() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%s / %s / %s", v[1], v[int((NR + 1) / 2)], v[NR] }'; }
# bench_ver PACKAGE: its installed Debian version.
bench_ver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null; }

# bench_median [NONE]: the median of the numbers on stdin, one per line; lines "-" (no value)
# are left out; prints NONE (default "fail") when no number is left.
bench_median() {
    { grep -vx -- '-' || true; } | sort -n |
        awk -v none="${1:-fail}" '{ v[NR] = $1 } END { if (NR == 0) print none; else print v[int((NR + 1) / 2)] }'
}
median() { bench_median fail; }

# bench_put_section NAME FILE: replaces the part of docs/benchmarks.md between
# <!-- NAME:begin --> and <!-- NAME:end --> with FILE (which carries the markers), or appends
# FILE when the document has no such part yet.
bench_put_section() {
    local doc=docs/benchmarks.md b="<!-- $1:begin -->" e="<!-- $1:end -->" tmp
    [ -f "$doc" ] || printf '# Benchmarks\n\n' > "$doc"
    if grep -qxF "$b" "$doc"; then
        tmp=$(mktemp)
        awk -v f="$2" -v b="$b" -v e="$e" '$0 == b { while ((getline l < f) > 0) print l; skip = 1; next }
            $0 == e { skip = 0; next } !skip' "$doc" > "$tmp"
        cat "$tmp" > "$doc"
        rm -f "$tmp"
    else
        { echo; cat "$2"; } >> "$doc"
    fi
}

# bench_netns: a namespace of the run's own (loopback up) and a work dir in /dev/shm, both
# removed on any exit, with every process in PIDS and the run's cgroups. Sets ID, NS, WORK
# and PIDS.
bench_netns() {
    ID=$(bench_id)
    NS="nbbench-$ID"
    WORK=$(mktemp -d /dev/shm/netboot-bench.XXXXXX)
    chmod 755 "$WORK"
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    ip netns add "$NS"
    ip -n "$NS" link set lo up
}
bench_cleanup() {
    local p g
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    sleep 0.3
    for g in "$CG"/nbbench-"$ID"-*; do [ -d "$g" ] && rmdir "$g" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
in_ns() { ip netns exec "$NS" "$@"; }

# bench_veth: tftpd-hpa resolves its bind address with AI_ADDRCONFIG, which ignores loopback:
# give the namespace one non-loopback address (a veth pair inside it; no traffic uses it).
bench_veth() {
    ip -n "$NS" link add nbv0 type veth peer name nbv1
    ip -n "$NS" addr add 10.255.255.1/30 dev nbv0
    ip -n "$NS" link set nbv0 up
    ip -n "$NS" link set nbv1 up
}

# cgroup NAME PID: moves a just-started server into its own accounting group of this run.
cgroup() { mkdir -p "$CG/nbbench-$ID-$1"; echo "$2" > "$CG/nbbench-$ID-$1/cgroup.procs"; }
# cpu NAME: CPU seconds that group has used so far.
cpu() { awk '{ printf "%.3f", $1 / 1e9 }' "$CG/nbbench-$ID-$1/cpuacct.usage"; }

# busy: CPU seconds the whole machine has been busy so far (user, nice, system, irq, softirq,
# steal, all cores).
busy() { awk '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / 100 }' /proc/stat; }

# bench_quiet SECONDS MAX_BUSY TRIES: waits until the machine used less than MAX_BUSY
# CPU-seconds in SECONDS (nearly idle), at most TRIES times, so a run does not share the
# cores with someone else's work; then measures anyway, and says so.
bench_quiet() {
    local b0 b1
    for _ in $(seq "$3"); do
        b0=$(busy); sleep "$1"; b1=$(busy)
        awk -v a="$b0" -v b="$b1" -v m="$2" 'BEGIN { exit !(b - a < m) }' && return 0
    done
    echo "$BENCH: (the machine is still busy; measuring anyway)" >&2
}

# bench_nginx_conf DIR LISTEN ROOT [DIRECTIVE...]: an nginx config of the benchmark's own (pid,
# logs and temp files under DIR, never the system service's): sendfile, no access log, one
# worker per core, ROOT served on LISTEN; extra http-level directives after it.
bench_nginx_conf() {
    local dir=$1 listen=$2 root=$3 extra
    shift 3
    extra=$(printf '    %s;\n' "$@")
    mkdir -p "$dir/tmp"
    cat > "$dir/nginx.conf" <<CONF
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
$( [ $# -eq 0 ] || echo "$extra")
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    default_type application/octet-stream;
    server {
        listen $listen;
        root $root;
    }
}
CONF
}

# bench_node_toml FILE PUBKEY: the head of a node config for a benchmark: its data dir beside
# FILE, PUBKEY trusted, no DHCP. The caller appends the [tftp]/[http]/[fleet] it measures.
bench_node_toml() {
    cat > "$1" <<TOML
data_dir = "data"
trusted_publishers = ["$2"]
[dhcp]
mode = "off"
server_ip = "127.0.0.1"
TOML
}

# bench_tftp_node FILE: a node in $WORK whose first-stage program is FILE (published as a
# files-only release, signed with a key of the run's own), TFTP on 127.0.0.1:16969.
bench_tftp_node() {
    local key
    key=$("$BIN" keygen --out "$WORK/k" 2>/dev/null)
    bench_node_toml "$WORK/node.toml" "$key"
    cat >> "$WORK/node.toml" <<TOML
[tftp]
listen = "127.0.0.1:16969"
# Every simulated client comes from 127.0.0.1: lift the per-client cap meant for real hosts.
max_transfers = 1000
max_transfers_per_client = 1000
[http]
listen = "127.0.0.1:16980"
[boot]
first_stage = "bench"
TOML
    "$BIN" publish --config "$WORK/node.toml" --key "$WORK/k" --name bench --file "$1" >/dev/null 2>&1
}

# bench_core_lab: the star-shaped WAN lab of fleet.sh and throttled.sh (tests/wan/wan.sh): a
# `core` router namespace and the sites origin + SITES, each joined to the core by its own link
# of RTT ms (ORIGIN_RTT, SITE_RTTS[i]) at RATE_MBIT, its default route via the core. Needs WAN
# and WORK; sets WAN_ENV (for the caller's cleanup), ALL, CORE_NS and the maps NS, IP,
# CORE_IP, IFACE and RTT by site; defines wan (wan.sh on this lab, errors to WORK/wan.log)
# and in_ns SITE CMD....
bench_core_lab() {
    local s u out i
    WAN_ENV=$(WAN_OWNER_PID=$$ TMPDIR=/tmp "$WAN" up 2>/dev/null | sed -n 's/^WAN_ENV=//p')
    [ -n "$WAN_ENV" ] || bench_die "wan.sh up failed"
    wan() { "$WAN" "$1" "$WAN_ENV" "${@:2}" 2>>"$WORK/wan.log"; }
    in_ns() { local s=$1; shift; ip netns exec "${NS[$s]}" "$@"; }
    declare -gA NS IP CORE_IP IFACE RTT
    ALL=(origin "${SITES[@]}")
    RTT[origin]=$ORIGIN_RTT
    for i in "${!SITES[@]}"; do RTT[${SITES[$i]}]=${SITE_RTTS[$i]}; done
    wan site core >/dev/null
    CORE_NS=$(sed -n 's/^SITE_CORE_NS=//p' "$WAN_ENV")
    ip netns exec "$CORE_NS" sysctl -qw net.ipv4.ip_forward=1
    for s in "${ALL[@]}"; do
        u=${s^^}
        wan site "$s" >/dev/null
        NS[$s]=$(sed -n "s/^SITE_${u}_NS=//p" "$WAN_ENV")
        out=$(wan link core "$s" "${RTT[$s]}" "$RATE_MBIT")
        CORE_IP[$s]=$(sed -n "s/^LINK_CORE_${u}_CORE=//p" <<<"$out")
        IP[$s]=$(sed -n "s/^LINK_CORE_${u}_${u}=//p" <<<"$out")
        IFACE[$s]=$(sed -n "s/^LINK_CORE_${u}_IF=//p" <<<"$out")
        ip -n "${NS[$s]}" route add default via "${CORE_IP[$s]}"
    done
}
