#!/usr/bin/env bash
# shellcheck disable=SC2034 # LAB_LAST_PID, QEMU_BOOT_* etc. are outputs for the caller
# lab.sh — network-namespace lab for booting a real PXE client (QEMU, TCG) against a
# server under test. Nothing is configured in the root namespace: every link is created
# directly inside the lab's own namespaces, and all addresses live only there.
#
# Use as a library (bash):
#     source tests/pxe/lab.sh
#     lab_up [site]                 # create the lab; installs an EXIT/INT/TERM trap -> lab_down
#     lab_bg_in_server --log "$LAB_DIR/srv.log" my-server --iface "$LAB_IFACE_SERVER"
#     lab_ra_responder              # optional: RA with router lifetime 0 (see below)
#     qemu_boot bios "$LAB_DIR/serial.log" 120
#     lab_down                      # idempotent; also run by the trap
#
# or as a command (for callers that are not bash, e.g. a Rust test):
#     tests/pxe/lab.sh up [site]    # prints KEY=VALUE lines (also in $LAB_DIR/lab.env), exit 0
#     tests/pxe/lab.sh down ENVFILE # tears that lab down (ENVFILE = $LAB_DIR/lab.env)
#     tests/pxe/lab.sh ra ENVFILE   # starts the RA responder in that lab's server namespace
#     tests/pxe/lab.sh site-dhcp ENVFILE  # the site's own DHCP server (a lab made with `up site`)
#     tests/pxe/lab.sh gc [DIR]     # removes labs whose owner process died (see lab_gc)
#   In this mode there is no trap: the caller must run `lab.sh down` (also on failure).
#   The owner recorded for `gc` is lab.sh's parent process (the caller).
#
# Topology (ID = 6 hex chars, random per lab; X.Y derived from ID):
#
#   netns LAB_NS_CLIENT: bridge LAB_BRIDGE ── tap LAB_TAP  (QEMU runs in this namespace)
#                              ├── veth ── netns LAB_NS_SERVER: LAB_IFACE_SERVER 10.X.Y.1/24
#                              └── veth ── netns LAB_NS_SITE:   LAB_IFACE_SITE   10.X.Y.2/24 (lab_up site)
#
# Variables exported by lab_up (all also written to $LAB_DIR/lab.env):
#   LAB_ID             run id (6 hex chars)            LAB_DIR      per-lab scratch dir (logs, OVMF vars)
#   LAB_NS_CLIENT      client namespace                LAB_BRIDGE   bridge in the client namespace
#   LAB_TAP            tap for QEMU (client ns)        LAB_CLIENT_MAC  MAC that qemu_boot gives the NIC
#   LAB_NS_SERVER      server namespace                LAB_IFACE_SERVER  server interface (in LAB_NS_SERVER)
#   LAB_SERVER_IP      10.X.Y.1                        LAB_NS_SITE / LAB_IFACE_SITE / LAB_SITE_IP (10.X.Y.2)
#                                                      (empty unless `lab_up site`)
#   LAB_SUBNET         10.X.Y.0/24                     LAB_NET      10.X.Y    LAB_PREFIX 24
#   LAB_NETMASK        255.255.255.0                   LAB_BROADCAST 10.X.Y.255
#   LAB_DHCP_START / LAB_DHCP_END   10.X.Y.100 / 10.X.Y.199 (a free range for DHCP servers)
#   LAB_OWNER_PID / LAB_OWNER_START the process that owns the lab (for lab_gc)
#
# Tunables (environment): LAB_KEEP=1 keeps LAB_DIR after lab_down; LAB_NO_TRAP=1 makes
# lab_up not install traps; LAB_NIC, LAB_QEMU_MEM, LAB_QEMU_EXTRA, LAB_OVMF_CODE,
# LAB_OVMF_VARS: see qemu_boot. TMPDIR: where LAB_DIR is created.
#
# Requirements: root, iproute2, util-linux (setsid); python3 for lab_ra_responder;
# qemu-system-x86 + ipxe-qemu (+ ovmf for UEFI) for qemu_boot. A missing prerequisite is
# an error naming the Debian package, never a silent skip.

# ------------------------------------------------------------------------------------
# internal helpers
# ------------------------------------------------------------------------------------
lab__err() { echo "lab: ERROR: $*" >&2; }
lab__log() { echo "lab: $*" >&2; }

# lab__need CMD PACKAGE — fail (return 2) if CMD is missing, naming the Debian package.
lab__need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    lab__err "'$1' not found — install the Debian package: apt-get install $2"
    return 2
}

# lab__need_file PATH PACKAGE
lab__need_file() {
    [[ -e $1 ]] && return 0
    lab__err "$1 not found — install the Debian package: apt-get install $2"
    return 2
}

# lab__need_rom FILE PACKAGE — a firmware/ROM file in QEMU's search path (qemu -L help)
lab__need_rom() {
    local d
    for d in /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu; do
        [[ -e $d/$1 ]] && return 0
    done
    lab__err "QEMU firmware $1 not found — install the Debian package: apt-get install $2"
    return 2
}

lab__now() { date +%s.%N; }
lab__since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# lab__gone PID — true when PID no longer exists (or is a zombie nobody reaped yet).
lab__gone() {
    local st
    [[ -r /proc/$1/stat ]] || return 0
    st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
    [[ -z $st || $st == Z || $st == X ]]
}

# lab__kill_wait SECONDS PID... — TERM the processes (and their process groups), wait up
# to SECONDS for them to go away (reaping our own children), then KILL what is left.
lab__kill_wait() {
    local secs=$1 pid left i
    shift
    [[ $# -gt 0 ]] || return 0
    for pid in "$@"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < secs * 10; i++)); do
        left=0
        for pid in "$@"; do lab__gone "$pid" || left=1; done
        [[ $left -eq 0 ]] && break
        sleep 0.1
    done
    for pid in "$@"; do
        if ! lab__gone "$pid"; then
            kill -KILL -- "-$pid" 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for pid in "$@"; do
        wait "$pid" 2>/dev/null || true # reaps if it is our child; no-op otherwise
    done
    for ((i = 0; i < 50; i++)); do
        left=0
        for pid in "$@"; do lab__gone "$pid" || left=1; done
        [[ $left -eq 0 ]] && break
        sleep 0.1
    done
}

# lab__starttime PID — the process start time (clock ticks since boot), empty if gone.
lab__starttime() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    st=${st##*) }
    awk '{ print $20 }' <<<"$st"
}

# lab__track PID — remember PID (with its start time, so a reused PID is never killed).
lab__track() { echo "$1 $(lab__starttime "$1")" >>"$LAB_DIR/pids"; }

# lab__tracked — print the tracked PIDs that still are the processes we started.
lab__tracked() {
    local p t
    [[ -n ${LAB_DIR:-} && -f $LAB_DIR/pids ]] || return 0
    while read -r p t; do
        [[ $p =~ ^[0-9]+$ ]] || continue
        [[ -n $t && $(lab__starttime "$p") == "$t" ]] && echo "$p"
    done <"$LAB_DIR/pids"
}

lab__nsexec() { # lab__nsexec NS CMD...
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

# ------------------------------------------------------------------------------------
# lab_up [site] — create the lab (namespaces, bridge, tap, veths, addresses, links up),
# export the LAB_* variables listed at the top and write them to $LAB_DIR/lab.env.
# With "site", also create the site-DHCP namespace (LAB_NS_SITE, LAB_SITE_IP = .2).
# Installs `trap lab_down EXIT` (+ INT/TERM → lab_down, exit 130/143) unless LAB_NO_TRAP=1.
# Returns 0, or non-zero after cleaning up what it created.
# ------------------------------------------------------------------------------------
lab_up() {
    local with_site=0
    case ${1:-} in
    "") ;;
    site | --site) with_site=1 ;;
    *)
        lab__err "usage: lab_up [site]"
        return 2
        ;;
    esac
    if [[ $EUID -ne 0 ]]; then
        lab__err "lab_up needs root (network namespaces, tap devices)"
        return 2
    fi
    lab__need ip iproute2 || return
    lab__need setsid util-linux || return
    lab__need_file /dev/net/tun "(kernel tun module; no package)" || return
    if [[ ${LAB_UP:-0} == 1 && -n ${LAB_ID:-} ]] && ip netns list | grep -q "^nb-$LAB_ID-"; then
        lab__err "a lab ($LAB_ID) is already up in this shell; call lab_down first"
        return 2
    fi

    local id b0 b1 b2
    id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    b0=$((16#${id:0:2}))
    b1=$((16#${id:2:2}))
    b2=$((16#${id:4:2}))

    export LAB_ID=$id
    export LAB_DIR
    LAB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/netboot-lab-$id.XXXXXX")
    export LAB_NS_CLIENT="nb-$id-client"
    export LAB_NS_SERVER="nb-$id-server"
    export LAB_NS_SITE=""
    export LAB_BRIDGE="nbbr$id"
    export LAB_TAP="nbtap$id"
    export LAB_IFACE_SERVER="nbsv$id"
    export LAB_IFACE_SITE=""
    export LAB_NET="10.$b0.$b1"
    export LAB_PREFIX=24
    export LAB_NETMASK=255.255.255.0
    export LAB_SUBNET="$LAB_NET.0/24"
    export LAB_BROADCAST="$LAB_NET.255"
    export LAB_SERVER_IP="$LAB_NET.1"
    export LAB_SITE_IP=""
    export LAB_DHCP_START="$LAB_NET.100"
    export LAB_DHCP_END="$LAB_NET.199"
    export LAB_CLIENT_MAC
    LAB_CLIENT_MAC=$(printf '52:54:00:%02x:%02x:%02x' "$b0" "$b1" "$b2")
    if [[ $with_site == 1 ]]; then
        LAB_NS_SITE="nb-$id-site"
        LAB_IFACE_SITE="nbst$id"
        LAB_SITE_IP="$LAB_NET.2"
    fi
    export LAB_UP=1
    # who owns the lab (for `lab.sh gc`): the calling script, or lab.sh's parent in command mode
    export LAB_OWNER_PID=${lab__owner:-$$}
    export LAB_OWNER_START
    LAB_OWNER_START=$(lab__starttime "$LAB_OWNER_PID")
    : >"$LAB_DIR/pids"

    if [[ ${LAB_NO_TRAP:-0} != 1 ]]; then
        trap 'lab_down' EXIT
        trap 'lab_down; trap - EXIT; exit 130' INT
        trap 'lab_down; trap - EXIT; exit 143' TERM
    fi

    if ! lab__build; then
        lab__err "lab_up failed; tearing down"
        lab_down
        return 1
    fi
    lab__write_env
    lab__log "up: id=$LAB_ID subnet=$LAB_SUBNET server=$LAB_NS_SERVER/$LAB_IFACE_SERVER/$LAB_SERVER_IP${LAB_NS_SITE:+ site=$LAB_NS_SITE/$LAB_IFACE_SITE/$LAB_SITE_IP} tap=$LAB_NS_CLIENT/$LAB_TAP dir=$LAB_DIR"
}

lab__build() {
    local c=$LAB_NS_CLIENT s=$LAB_NS_SERVER d=$LAB_NS_SITE id=$LAB_ID
    ip netns add "$c" || return
    ip netns add "$s" || return
    if [[ -n $d ]]; then ip netns add "$d" || return; fi

    # client namespace: a dumb L2 segment (no addresses, no IPv6 on the bridge ports)
    lab__nsexec "$c" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || return
    ip -n "$c" link set lo up || return
    ip -n "$c" link add "$LAB_BRIDGE" type bridge stp_state 0 forward_delay 0 mcast_snooping 0 || return
    ip -n "$c" tuntap add dev "$LAB_TAP" mode tap user "$(id -u)" group "$(id -g)" || return
    ip -n "$c" link set "$LAB_TAP" master "$LAB_BRIDGE" || return

    # server namespace: veth into the bridge
    ip -n "$c" link add "nbps$id" type veth peer name "$LAB_IFACE_SERVER" netns "$s" || return
    ip -n "$c" link set "nbps$id" master "$LAB_BRIDGE" || return
    ip -n "$s" link set lo up || return
    # no DAD: the link-local address is usable at once (RA sender, IPv6 servers)
    lab__nsexec "$s" sysctl -qw "net.ipv6.conf.$LAB_IFACE_SERVER.accept_dad=0" || return
    ip -n "$s" addr add "$LAB_SERVER_IP/$LAB_PREFIX" broadcast "$LAB_BROADCAST" dev "$LAB_IFACE_SERVER" || return

    if [[ -n $d ]]; then
        ip -n "$c" link add "nbpd$id" type veth peer name "$LAB_IFACE_SITE" netns "$d" || return
        ip -n "$c" link set "nbpd$id" master "$LAB_BRIDGE" || return
        ip -n "$d" link set lo up || return
        lab__nsexec "$d" sysctl -qw "net.ipv6.conf.$LAB_IFACE_SITE.accept_dad=0" || return
        ip -n "$d" addr add "$LAB_SITE_IP/$LAB_PREFIX" broadcast "$LAB_BROADCAST" dev "$LAB_IFACE_SITE" || return
        ip -n "$c" link set "nbpd$id" up || return
        ip -n "$d" link set "$LAB_IFACE_SITE" up || return
    fi
    ip -n "$c" link set "nbps$id" up || return
    ip -n "$c" link set "$LAB_TAP" up || return
    ip -n "$c" link set "$LAB_BRIDGE" up || return
    ip -n "$s" link set "$LAB_IFACE_SERVER" up || return
}

lab__write_env() {
    local v
    {
        for v in LAB_ID LAB_DIR LAB_NS_CLIENT LAB_NS_SERVER LAB_NS_SITE LAB_BRIDGE LAB_TAP \
            LAB_IFACE_SERVER LAB_IFACE_SITE LAB_NET LAB_PREFIX LAB_NETMASK LAB_SUBNET \
            LAB_BROADCAST LAB_SERVER_IP LAB_SITE_IP LAB_DHCP_START LAB_DHCP_END LAB_CLIENT_MAC \
            LAB_OWNER_PID LAB_OWNER_START; do
            printf '%s=%s\n' "$v" "${!v}"
        done
    } >"$LAB_DIR/lab.env"
}

# lab_load_env ENVFILE — import a lab created elsewhere (`lab.sh up`), e.g. in run-qemu.sh.
lab_load_env() {
    local k v
    [[ -r $1 ]] || {
        lab__err "cannot read lab env file '$1'"
        return 2
    }
    while IFS='=' read -r k v; do
        [[ $k =~ ^LAB_[A-Z_]+$ ]] || continue
        printf -v "$k" '%s' "$v"
        export "${k?}"
    done <"$1"
    export LAB_UP=1
}

# ------------------------------------------------------------------------------------
# lab_down — stop everything the lab started (tracked PIDs, then any process left in the
# lab's namespaces), wait for them to exit, delete the namespaces (which removes the
# bridge, tap and veths) and LAB_DIR (unless LAB_KEEP=1). Idempotent; always returns 0.
# ------------------------------------------------------------------------------------
lab_down() {
    [[ -n ${LAB_ID:-} ]] || return 0
    local ns pids=() p
    if [[ -n ${LAB_DIR:-} && -f $LAB_DIR/pids ]]; then
        while read -r p; do pids+=("$p"); done < <(lab__tracked)
        lab__kill_wait 5 "${pids[@]}"
        : >"$LAB_DIR/pids"
    fi
    for ns in "nb-$LAB_ID-client" "nb-$LAB_ID-server" "nb-$LAB_ID-site"; do
        [[ -e /run/netns/$ns ]] || continue
        pids=()
        while read -r p; do [[ $p =~ ^[0-9]+$ ]] && pids+=("$p"); done < <(ip netns pids "$ns" 2>/dev/null)
        lab__kill_wait 5 "${pids[@]}"
    done
    if [[ -e /run/netns/nb-$LAB_ID-client ]]; then
        ip -n "nb-$LAB_ID-client" link del "nbtap$LAB_ID" 2>/dev/null || true
    fi
    for ns in "nb-$LAB_ID-client" "nb-$LAB_ID-server" "nb-$LAB_ID-site"; do
        [[ -e /run/netns/$ns ]] && { ip netns del "$ns" || lab__err "could not delete netns $ns"; }
    done
    if [[ -n ${LAB_DIR:-} && -d $LAB_DIR ]]; then
        if [[ ${LAB_KEEP:-0} == 1 ]]; then
            lab__log "down: $LAB_ID (kept $LAB_DIR)"
        else
            rm -rf "$LAB_DIR"
            lab__log "down: $LAB_ID"
        fi
    fi
    LAB_UP=0
    LAB_ID=""
    return 0
}

# ------------------------------------------------------------------------------------
# Running things inside the lab.
#
# lab_run_in NS CMD...                  run CMD in namespace NS in the foreground; returns its status
# lab_bg_in NS [--log FILE] CMD...      start CMD in NS in the background, in its own session
#                                       (setsid), stdin </dev/null, stdout+stderr appended to FILE
#                                       (default $LAB_DIR/bg-N.log). Sets LAB_LAST_PID and
#                                       LAB_LAST_LOG; the PID is recorded for lab_down. Call it
#                                       directly, not in $(...), so the PID stays a child of
#                                       your shell.
# lab_run_in_server / lab_run_in_site / lab_run_in_client CMD...
# lab_bg_in_server / lab_bg_in_site / lab_bg_in_client [--log FILE] CMD...
# lab_stop PID...                       TERM (then KILL after 5 s) and reap given PIDs
# lab_wait_listen NS tcp|udp PORT [SECONDS]
#                                       wait until something listens on PORT in NS (default 10 s);
#                                       returns 1 on timeout
# ------------------------------------------------------------------------------------
lab_run_in() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

lab_bg_in() {
    local ns=$1 log=
    shift
    if [[ ${1:-} == --log ]]; then
        log=$2
        shift 2
    fi
    [[ $# -gt 0 ]] || {
        lab__err "lab_bg_in: no command"
        return 2
    }
    [[ -n ${LAB_DIR:-} && -d $LAB_DIR ]] || {
        lab__err "lab_bg_in: no lab (call lab_up first)"
        return 2
    }
    if [[ -z $log ]]; then
        log="$LAB_DIR/bg-$(wc -l <"$LAB_DIR/pids").log"
    fi
    ip netns exec "$ns" setsid "$@" </dev/null >>"$log" 2>&1 &
    LAB_LAST_PID=$!
    LAB_LAST_LOG=$log
    lab__track "$LAB_LAST_PID"
}

lab_run_in_server() { lab_run_in "$LAB_NS_SERVER" "$@"; }
lab_run_in_client() { lab_run_in "$LAB_NS_CLIENT" "$@"; }
lab_run_in_site() {
    [[ -n ${LAB_NS_SITE:-} ]] || {
        lab__err "no site namespace (use lab_up site)"
        return 2
    }
    lab_run_in "$LAB_NS_SITE" "$@"
}
lab_bg_in_server() { lab_bg_in "$LAB_NS_SERVER" "$@"; }
lab_bg_in_client() { lab_bg_in "$LAB_NS_CLIENT" "$@"; }
lab_bg_in_site() {
    [[ -n ${LAB_NS_SITE:-} ]] || {
        lab__err "no site namespace (use lab_up site)"
        return 2
    }
    lab_bg_in "$LAB_NS_SITE" "$@"
}

lab_stop() { lab__kill_wait 5 "$@"; }

lab_wait_listen() {
    local ns=$1 proto=$2 port=$3 secs=${4:-10} i flag
    case $proto in tcp) flag=-ltnH ;; udp) flag=-lunH ;; *)
        lab__err "lab_wait_listen: proto must be tcp or udp"
        return 2
        ;;
    esac
    for ((i = 0; i < secs * 10; i++)); do
        if ip netns exec "$ns" ss "$flag" "sport = :$port" 2>/dev/null | grep -q .; then
            return 0
        fi
        sleep 0.1
    done
    lab__err "nothing listens on $proto/$port in $ns after ${secs}s"
    return 1
}

# ------------------------------------------------------------------------------------
# lab_ra_responder [NS [IFACE]] — start an IPv6 router-advertisement responder (python3,
# raw ICMPv6 socket) in NS (default LAB_NS_SERVER) on IFACE (default LAB_IFACE_SERVER).
# It joins ff02::2 so it sees the clients' router solicitations, answers each one at once
# and also sends an unsolicited RA every LAB_RA_INTERVAL s (default 1; iPXE's router
# solicitation can be lost while the link comes up), always to ff02::1 from the link-local
# address: router lifetime 0, no prefix, M=O=0 (i.e. "there is no IPv6 router here").
# This stops iPXE from waiting ~16 s for IPv6 autoconfiguration (pxe-lab.md gotcha 1).
# Log: $LAB_DIR/ra.log. Sets LAB_RA_PID. Returns non-zero if it did not start.
# ------------------------------------------------------------------------------------
# shellcheck disable=SC2120 # arguments are optional
lab_ra_responder() {
    local ns=${1:-$LAB_NS_SERVER} ifc=${2:-$LAB_IFACE_SERVER} i
    lab__need python3 python3-minimal || return
    cat >"$LAB_DIR/ra.py" <<'EOF'
import os, select, socket, struct, sys, time

ifname = sys.argv[1]
interval = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0

def linklocal_ready():
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                addr, _idx, _plen, scope, flags, name = line.split()
                if name == ifname and addr.startswith("fe80") and not int(flags, 16) & 0x40:
                    return True
    except OSError:
        pass
    return False

deadline = time.monotonic() + 10
while not linklocal_ready():
    if time.monotonic() > deadline:
        print(f"ra: no usable link-local address on {ifname}", flush=True)
        sys.exit(1)
    time.sleep(0.05)

idx = socket.if_nametoindex(ifname)
with open(f"/sys/class/net/{ifname}/address") as f:
    mac = bytes.fromhex(f.read().strip().replace(":", ""))

s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
             socket.inet_pton(socket.AF_INET6, "ff02::2") + struct.pack("@I", idx))
# ICMP6_FILTER (option 1 at level IPPROTO_ICMPV6): pass only router solicitations (133)
blocked = [0xFFFFFFFF] * 8
blocked[133 >> 5] &= ~(1 << (133 & 31))
s.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack("8I", *blocked))

# type 134, code 0, checksum (kernel fills it), cur hop limit 64, flags 0,
# router lifetime 0, reachable 0, retrans 0; option 1 = source link-layer address
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0) + bytes([1, 1]) + mac
dst = ("ff02::1", 0, 0, idx)

def send(why):
    try:
        s.sendto(ra, dst)
        print(f"ra: {time.strftime('%H:%M:%S')} sent RA (lifetime 0) on {ifname}: {why}", flush=True)
    except OSError as e:
        print(f"ra: send failed: {e}", flush=True)

send("start")
print("ra: ready", flush=True)
nxt = time.monotonic() + interval
while True:
    r, _, _ = select.select([s], [], [], max(0.0, nxt - time.monotonic()))
    if r:
        data, src = s.recvfrom(2048)
        if data and data[0] == 133:
            send(f"RS from {src[0]}")
    if time.monotonic() >= nxt:
        send("periodic")
        nxt = time.monotonic() + interval
EOF
    lab_bg_in "$ns" --log "$LAB_DIR/ra.log" python3 -u "$LAB_DIR/ra.py" "$ifc" "${LAB_RA_INTERVAL:-1}" || return
    LAB_RA_PID=$LAB_LAST_PID
    for ((i = 0; i < 100; i++)); do
        grep -q '^ra: ready' "$LAB_DIR/ra.log" 2>/dev/null && return 0
        if lab__gone "$LAB_RA_PID"; then break; fi
        sleep 0.1
    done
    lab__err "RA responder did not start: $(tail -n 5 "$LAB_DIR/ra.log" 2>/dev/null)"
    return 1
}

# ------------------------------------------------------------------------------------
# qemu_boot MODE SERIAL_LOG [TIMEOUT_SECONDS=180]
#   Boot a PXE client VM (TCG, q35) in LAB_NS_CLIENT on LAB_TAP and watch its serial log.
#   MODE: bios       SeaBIOS + the NIC's default ROM (iPXE, arch 0, user-class iPXE)
#         uefi-ipxe  OVMF + the NIC's default ROM (iPXE EFI driver, arch 7)
#         uefi-pxe   OVMF with romfile= (EDK2's own PXE client, arch 7; serve snponly.efi)
#         uefi-sb    as uefi-pxe on Secure Boot-enforcing OVMF (OVMF_CODE_4M.secboot.fd + a
#                    copy of OVMF_VARS_4M.ms.fd, Microsoft keys enrolled): only signed
#                    programs run (serve shim, then signed GRUB and kernel)
#         uefi-http  OVMF with romfile= and PXE switched off (fw_cfg IPv4PXESupport=no,
#                    IPv6Support=no), so its first boot entry is "UEFI HTTPv4": EDK2's HTTP
#                    Boot client (arch 16, option 60 HTTPClient; wants a boot file URL)
#         arm64-pxe  qemu-system-aarch64 -machine virt -cpu cortex-a57 with AAVMF and romfile=
#                    (EDK2's PXE client, arch 11); serial console ttyAMA0; 1 GiB RAM.
#                    Secure Boot enforced by default (AAVMF_CODE.ms.fd + AAVMF_VARS.ms.fd)
#   Env:  LAB_NIC (virtio-net-pci | e1000 | e1000e | rtl8139; default virtio-net-pci)
#         LAB_QEMU_MEM (MiB, default 512; arm64-pxe 1024), LAB_QEMU_EXTRA (extra args, word-split)
#         LAB_OVMF_CODE / LAB_OVMF_VARS (default /usr/share/OVMF/OVMF_{CODE,VARS}.fd;
#         VARS is copied per run into LAB_DIR)
#         LAB_AAVMF_CODE / LAB_AAVMF_VARS (default /usr/share/AAVMF/AAVMF_{CODE,VARS}.ms.fd)
#   uefi-pxe, uefi-sb, uefi-http and arm64-pxe work only with virtio-net-pci (the firmware's own NIC
#   driver); bios and uefi-ipxe work with all four NICs.
#   Success: the log shows "NETBOOT-E2E: PASS". Failure: "NETBOOT-E2E: FAIL",
#   "Kernel panic", "No bootable device", "No bootable option or device was found" (OVMF
#   tried every boot entry), "PXE-E<nn>", "No more network devices",
#   "UEFI Interactive Shell" (OVMF gave up), a netboot script or config saying
#   "netboot: booting ... failed" or "netboot: nothing to boot", a line starting "grub> "
#   (GRUB found no config: e.g. proxy DHCP without next-server), QEMU exiting without a
#   verdict, or the timeout.
#   stdout: one line  "qemu_boot: mode=MODE result=PASS|FAIL|TIMEOUT|EXITED elapsed=S.S
#           initramfs=S.S log=SERIAL_LOG"   (seconds since QEMU start; initramfs = time to
#           the "initramfs up" marker, "-" if never seen). On failure the serial-log tail
#           goes to stderr.
#   Sets QEMU_BOOT_RESULT and QEMU_BOOT_ELAPSED.
#   Returns 0 PASS, 1 FAIL marker, 2 TIMEOUT, 3 QEMU exited without a verdict,
#           4 usage error / missing prerequisite.
# ------------------------------------------------------------------------------------
qemu_boot() {
    local mode=${1:-} log=${2:-} timeout=${3:-180}
    if [[ -z $mode || -z $log ]]; then
        lab__err "usage: qemu_boot bios|uefi-ipxe|uefi-pxe|uefi-http|arm64-pxe SERIAL_LOG [TIMEOUT]"
        return 4
    fi
    [[ ${LAB_UP:-0} == 1 && -n ${LAB_NS_CLIENT:-} && -n ${LAB_TAP:-} ]] || {
        lab__err "qemu_boot: no lab (call lab_up, or lab_load_env ENVFILE)"
        return 4
    }
    local nic=${LAB_NIC:-virtio-net-pci} rom romfile="" uefi=0 qemu=qemu-system-x86_64
    local -a args=()
    case $nic in
    virtio-net-pci) rom=virtio ;;
    e1000) rom=e1000 ;;
    e1000e) rom=e1000e ;;
    rtl8139) rom=rtl8139 ;;
    *) rom="" ;;
    esac
    case $mode in
    bios)
        lab__need_rom bios-256k.bin seabios || return 4
        [[ -z $rom ]] || lab__need_rom "efi-$rom.rom" ipxe-qemu || return 4
        ;;
    uefi-ipxe)
        uefi=1
        [[ -z $rom ]] || lab__need_rom "efi-$rom.rom" ipxe-qemu || return 4
        ;;
    uefi-pxe | uefi-sb | uefi-http | arm64-pxe)
        uefi=1
        romfile=",romfile="
        if [[ $nic != virtio-net-pci ]]; then
            # the firmware itself only has a virtio-net driver; without the iPXE ROM other NICs are dead
            lab__err "qemu_boot: $mode needs LAB_NIC=virtio-net-pci (the firmware has no $nic driver)"
            return 4
        fi
        if [[ $mode == uefi-http ]]; then
            # OVMF makes PXEv4, PXEv6, HTTPv4 and HTTPv6 boot entries per NIC, in that order;
            # without the PXE ones (and the IPv6 stack) the first is "UEFI HTTPv4"
            args+=(-fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=no
                -fw_cfg name=opt/org.tianocore/IPv6Support,string=no)
        fi
        ;;
    *)
        lab__err "qemu_boot: unknown mode '$mode' (bios, uefi-ipxe, uefi-pxe, uefi-sb, uefi-http, arm64-pxe)"
        return 4
        ;;
    esac

    # shellcheck disable=SC2054 # the commas are QEMU option syntax
    if [[ $mode == arm64-pxe ]]; then
        qemu=qemu-system-aarch64
        lab__need "$qemu" qemu-system-arm || return 4
        args+=(-machine virt,accel=tcg -cpu cortex-a57 -m "${LAB_QEMU_MEM:-1024}")
    else
        lab__need "$qemu" qemu-system-x86 || return 4
        args+=(-machine q35,accel=tcg,graphics=off -m "${LAB_QEMU_MEM:-512}")
    fi
    # shellcheck disable=SC2054 # the commas are QEMU option syntax
    args+=(
        -smp 1 -display none -nodefaults -no-user-config -no-reboot
        -serial "file:$log"
        -netdev "tap,id=n0,ifname=$LAB_TAP,script=no,downscript=no"
        -device "$nic,netdev=n0,mac=$LAB_CLIENT_MAC,bootindex=1$romfile"
    )
    if [[ $mode == arm64-pxe ]]; then
        # AAVMF: both pflash images are 64 MiB; the VARS copy is written to (enrolled keys)
        local code=${LAB_AAVMF_CODE:-/usr/share/AAVMF/AAVMF_CODE.ms.fd}
        local vars_src=${LAB_AAVMF_VARS:-/usr/share/AAVMF/AAVMF_VARS.ms.fd} vars
        lab__need_file "$code" qemu-efi-aarch64 || return 4
        lab__need_file "$vars_src" qemu-efi-aarch64 || return 4
        vars=$(mktemp "$LAB_DIR/AAVMF_VARS.XXXXXX.fd")
        cp "$vars_src" "$vars"
        args+=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$code"
            -drive "if=pflash,format=raw,unit=1,file=$vars")
    elif [[ $uefi == 1 ]]; then
        local code=${LAB_OVMF_CODE:-/usr/share/OVMF/OVMF_CODE.fd}
        local vars_src=${LAB_OVMF_VARS:-/usr/share/OVMF/OVMF_VARS.fd} vars
        if [[ $mode == uefi-sb ]]; then
            code=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
            vars_src=/usr/share/OVMF/OVMF_VARS_4M.ms.fd
        fi
        lab__need_file "$code" ovmf || return 4
        lab__need_file "$vars_src" ovmf || return 4
        vars=$(mktemp "$LAB_DIR/OVMF_VARS.XXXXXX.fd")
        cp "$vars_src" "$vars"
        args+=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$code"
            -drive "if=pflash,format=raw,unit=1,file=$vars")
    fi
    if [[ -n ${LAB_QEMU_EXTRA:-} ]]; then
        local -a extra
        read -r -a extra <<<"$LAB_QEMU_EXTRA"
        args+=("${extra[@]}")
    fi

    : >"$log"
    local qlog="$log.qemu-stderr" start pid result="" rc t_init="-" elapsed
    start=$(lab__now)
    lab_bg_in "$LAB_NS_CLIENT" --log "$qlog" "$qemu" "${args[@]}"
    pid=$LAB_LAST_PID
    QEMU_BOOT_PID=$pid

    # "UEFI Interactive Shell": OVMF found nothing to boot and fell back to its shell
    local fail_re='NETBOOT-E2E: FAIL|Kernel panic|No bootable device|PXE-E[0-9A-F]{2}|No more network devices|UEFI Interactive Shell|netboot: booting [^ ]+( v[0-9]+)? failed|netboot: nothing to boot|^grub> |No bootable option or device was found'
    while :; do
        if [[ $t_init == - ]] && grep -aq 'NETBOOT-E2E: initramfs up' "$log"; then
            t_init=$(lab__since "$start")
        fi
        if grep -aq 'NETBOOT-E2E: PASS' "$log"; then
            result=PASS rc=0
        elif grep -aEq "$fail_re" "$log"; then
            result=FAIL rc=1
        elif lab__gone "$pid"; then
            sleep 0.2 # let the last serial bytes land
            if grep -aq 'NETBOOT-E2E: PASS' "$log"; then
                result=PASS rc=0
            elif grep -aEq "$fail_re" "$log"; then
                result=FAIL rc=1
            else
                result=EXITED rc=3
            fi
        elif awk -v a="$start" -v b="$(lab__now)" -v t="$timeout" 'BEGIN { exit !(b - a > t) }'; then
            result=TIMEOUT rc=2
        fi
        [[ -n $result ]] && break
        sleep 0.1
    done
    elapsed=$(lab__since "$start")
    if [[ $t_init == - ]] && grep -aq 'NETBOOT-E2E: initramfs up' "$log"; then t_init=$elapsed; fi

    if [[ $result == PASS ]]; then
        # the guest powers itself off; give it a moment, then make sure QEMU is gone
        local i
        for ((i = 0; i < 50; i++)); do
            lab__gone "$pid" && break
            sleep 0.1
        done
    fi
    lab__kill_wait 5 "$pid"
    QEMU_BOOT_PID=""
    sed -i "/^$pid /d" "$LAB_DIR/pids" 2>/dev/null || true

    QEMU_BOOT_RESULT=$result
    QEMU_BOOT_ELAPSED=$elapsed
    echo "qemu_boot: mode=$mode result=$result elapsed=$elapsed initramfs=$t_init log=$log"
    if [[ $rc -ne 0 ]]; then
        {
            echo "---- qemu_boot $mode $result: last lines of $log ----"
            tail -n 40 "$log" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g'
            if [[ -s $qlog ]]; then
                echo "---- qemu stderr ----"
                tail -n 20 "$qlog"
            fi
            echo "----"
        } >&2
    fi
    return "$rc"
}

# ------------------------------------------------------------------------------------
# lab_gc [DIR] — tear down labs left behind by owners that died without lab_down (e.g.
# SIGKILL): every DIR/netboot-lab-*/lab.env (DIR defaults to ${TMPDIR:-/tmp}) whose
# LAB_OWNER_PID is no longer the process that created it. Live labs are not touched.
# ------------------------------------------------------------------------------------
# lab_site_dhcp — the site's own DHCP server (the office router): dnsmasq in LAB_NS_SITE
# handing out addresses only, no boot options, as a node in proxy mode expects beside it.
# With LAB_SITE_NEXT_SERVER=ADDR its answers also name ADDR as next-server (siaddr, no boot
# file): the one site setting a GRUB without proxy-DHCP support needs to find its TFTP server.
# Needs `lab_up site`. Log: $LAB_DIR/dnsmasq-site.log. Stopped by lab_down.
lab_site_dhcp() {
    [[ -n ${LAB_NS_SITE:-} ]] || {
        lab__err "lab_site_dhcp needs a lab made with 'lab_up site'"
        return 2
    }
    lab__need dnsmasq dnsmasq-base || return 2
    cat >"$LAB_DIR/dnsmasq-site.conf" <<EOF
port=0
interface=$LAB_IFACE_SITE
bind-interfaces
user=root
group=root
log-facility=-
log-dhcp
pid-file=$LAB_DIR/dnsmasq-site.pid
dhcp-leasefile=$LAB_DIR/dnsmasq-site.leases
dhcp-range=$LAB_DHCP_START,$LAB_DHCP_END,$LAB_NETMASK,1h
dhcp-authoritative
no-ping
EOF
    if [[ -n ${LAB_SITE_NEXT_SERVER:-} ]]; then
        echo "dhcp-boot=,,$LAB_SITE_NEXT_SERVER" >>"$LAB_DIR/dnsmasq-site.conf"
    fi
    lab_bg_in_site --log "$LAB_DIR/dnsmasq-site.log" dnsmasq --keep-in-foreground --conf-file="$LAB_DIR/dnsmasq-site.conf"
    lab_wait_listen "$LAB_NS_SITE" udp 67
}

lab_gc() {
    local dir=${1:-${TMPDIR:-/tmp}} env owner start
    for env in "$dir"/netboot-lab-*/lab.env; do
        [[ -f $env ]] || continue
        owner=$(sed -n 's/^LAB_OWNER_PID=//p' "$env")
        start=$(sed -n 's/^LAB_OWNER_START=//p' "$env")
        if [[ -n $owner && -n $start && $(lab__starttime "$owner") == "$start" ]]; then
            continue
        fi
        lab__log "gc: stale lab $(dirname "$env")"
        (
            lab_load_env "$env"
            LAB_KEEP=0
            lab_down
        )
    done
}

# ------------------------------------------------------------------------------------
# command mode: tests/pxe/lab.sh up [site] | down ENVFILE | ra ENVFILE | gc [DIR]
# ------------------------------------------------------------------------------------
lab__main() {
    set -euo pipefail
    case ${1:-} in
    up)
        LAB_NO_TRAP=1
        lab__owner=$PPID
        lab_up "${2:-}"
        cat "$LAB_DIR/lab.env"
        ;;
    down)
        [[ $# -eq 2 ]] || {
            lab__err "usage: lab.sh down ENVFILE"
            exit 2
        }
        lab_load_env "$2"
        lab_down
        ;;
    ra)
        [[ $# -eq 2 ]] || {
            lab__err "usage: lab.sh ra ENVFILE"
            exit 2
        }
        lab_load_env "$2"
        LAB_NO_TRAP=1
        # shellcheck disable=SC2119
        lab_ra_responder
        ;;
    site-dhcp)
        [[ $# -eq 2 ]] || {
            lab__err "usage: lab.sh site-dhcp ENVFILE"
            exit 2
        }
        lab_load_env "$2"
        LAB_NO_TRAP=1
        lab_site_dhcp
        ;;
    gc)
        lab_gc "${2:-}"
        ;;
    *)
        sed -n '2,/^# Requirements/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
    esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    lab__main "$@"
fi
