# Shared by the lab's peer servers (not netboot): tests/pxe/reference-server.sh and
# tests/bench/peer-dnsmasq-nginx.sh. Sourced.

# dnsmasq_base_conf PREFIX: the lines every peer dnsmasq config starts with: DHCP only on the
# lab's server interface, no DNS, run as root inside the namespace, log every DHCP decision,
# pid and lease files at PREFIX.pid / PREFIX.leases.
dnsmasq_base_conf() {
    echo "port=0"
    echo "interface=$LAB_IFACE_SERVER"
    echo "bind-interfaces"
    echo "user=root"
    echo "group=root"
    echo "log-facility=-"
    echo "log-dhcp"
    echo "pid-file=$1.pid"
    echo "dhcp-leasefile=$1.leases"
}

# supervise NAME PID...: the servers a wrapper started run as its children; it reaps them when
# it is stopped (TERM/INT) or when one of them exits, so the lab's teardown leaves no orphans
# behind. Exits with the status of the child that ended first (143/130 when stopped).
supervise() {
    local name=$1 rc=0
    shift
    SUPERVISED=("$@")
    supervise__stop() {
        kill -TERM "${SUPERVISED[@]}" 2>/dev/null || true
        wait "${SUPERVISED[@]}" 2>/dev/null || true
    }
    trap 'supervise__stop; exit 143' TERM
    trap 'supervise__stop; exit 130' INT
    wait -n "${SUPERVISED[@]}" || rc=$?
    echo "$name: a child exited (status $rc), stopping" >&2
    supervise__stop
    exit "$rc"
}
