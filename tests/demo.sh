#!/usr/bin/env bash
# The netboot demo (as root on Debian): a fleet of three sites that really boots clients.
#
#   site A (HQ) ──10 ms── site B (regional) ──10 ms── site C (branch office)
#        └──────────────────────80 ms───────────────────────┘      (100 Mbit/s each)
#
# Every site runs a `netboot node`; A and B only sync, C also serves its office's LAN in
# proxy-DHCP mode beside the office router's own DHCP server (dnsmasq). The operator signs
# two releases at HQ and publishes them to A (`netboot publish --to`): the iPXE first stage
# (undionly.kpxe, ipxe.efi, snponly.efi) and a Debian kernel + initramfs ("e2e"). The nodes
# pass them on; C fetches nearest-first (mostly from B) and verifies every byte. Then C's WAN
# links are cut, and a BIOS and a UEFI machine (QEMU) at C still PXE-boot from C's node; the
# initramfs fetches check.bin from the node and checks its hash.
#
#   bash tests/demo.sh
#
# Everything runs in throw-away network namespaces (tests/wan/wan.sh for the sites and WAN
# links, tests/pxe/lab.sh for C's LAN); nothing touches the host's network, and everything is
# torn down on any exit. Printed at the end: each node's fleet log, C's per-client log (one
# line per DHCP, TFTP and HTTP transaction) and the clients' consoles; all logs, node configs
# and C's /fleet/status.json are kept in ./demo-logs/. Exit 0 only if both clients booted.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
start_time=$SECONDS
FLEET_PORT=7311

step() { printf '\n== %s\n' "$*"; }
say() { printf '   %s\n' "$*"; }
indent() { sed 's/^/   /'; }
# tidy: no terminal escapes or CRs; 64-hex ids, keys and hashes cut to their first 10 digits
tidy() { sed -E 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1b[a-zA-Z]//g; s/\r//g; s/([0-9a-f]{10})[0-9a-f]{54}/\1…/g'; }
# logline: a node's log line with a short time of day, the level only when it is not INFO
logline() { tidy | sed -E 's/^[0-9-]+T([0-9:]{8}\.[0-9])[0-9]*Z +(INFO +)?/\1  /'; }
die() {
    echo "demo: ERROR: $*" >&2
    exit 1
}

step "1. installing the Debian packages and building netboot"
bash tests/install-deps.sh
cargo build --locked -p netboot-cli -p netboot-tests --bins
target=${CARGO_TARGET_DIR:-$repo/target}
bin="$target/debug/netboot"
export WAN_DELAY_BIN="$target/debug/wan_delay"
image="${NETBOOT_TEST_CACHE:-/var/cache/netboot-tests}/image"
tests/pxe/build-boot-image.sh "$image"
say "boot image: Debian kernel $(awk '{ print $1, $2; exit }' "$image/kernel.txt") + busybox initramfs + check.bin ($image)"

logs="$repo/demo-logs"
rm -rf "$logs" && mkdir -p "$logs"
work=$(mktemp -d "${TMPDIR:-/tmp}/netboot-demo.XXXXXX") # node data dirs, publisher key

# Teardown on any exit: a running boot, the nodes and the office DHCP server, then the WAN
# lab, then C's LAN (wan.sh down before lab.sh down: the WAN lab adopted C's namespace).
pids=() boot_pid="" wan_env="" lab_env=""
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
    local pid i alive
    set +e
    trap - EXIT INT TERM
    if [[ -n $boot_pid ]]; then # run-qemu.sh stops its QEMU on TERM
        kill -TERM "$boot_pid" 2>/dev/null
        wait "$boot_pid" 2>/dev/null
    fi
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    [[ ${#pids[@]} -eq 0 ]] || wait "${pids[@]}" 2>/dev/null
    [[ -z $wan_env ]] || tests/wan/wan.sh down "$wan_env" 2>>"$logs/wan.log"
    if [[ -n $lab_env ]]; then
        cp "$(dirname "$lab_env")/dnsmasq-site.log" "$logs/site-dhcp.log" 2>/dev/null
        tests/pxe/lab.sh down "$lab_env" 2>>"$logs/lab.log"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# load_env FILE PREFIX — import FILE's KEY=VALUE lines whose key starts with PREFIX
load_env() {
    local k v
    while IFS='=' read -r k v; do
        [[ $k =~ ^$2[A-Z0-9_]*$ ]] && printf -v "$k" '%s' "$v"
    done <"$1"
    return 0
}

step "2. three sites, each a network namespace, joined by emulated WAN links"
# C's office LAN: a server namespace (C's node), the office router's DHCP (site namespace)
# and a client namespace with a bridge and a tap for QEMU.
tests/pxe/lab.sh up site >"$work/lab.out" 2>"$logs/lab.log" || die "lab.sh up failed: $(cat "$logs/lab.log")"
lab_env="$(sed -n 's/^LAB_DIR=//p' "$work/lab.out")/lab.env"
load_env "$lab_env" LAB_
WAN_OWNER_PID=$$ tests/wan/wan.sh up >"$work/wan.out" 2>>"$logs/wan.log" || die "wan.sh up failed: $(cat "$logs/wan.log")"
wan_env=$(sed -n 's/^WAN_ENV=//p' "$work/wan.out")
wan() { tests/wan/wan.sh "$1" "$wan_env" "${@:2}" >/dev/null 2>>"$logs/wan.log" || die "wan.sh $* failed: $(tail -n 5 "$logs/wan.log")"; }
wan site a
wan site b
wan site c "$LAB_NS_SERVER" # C's node runs in its LAN's server namespace, with a WAN uplink
wan link a b 10 100
wan link b c 10 100
wan link a c 80 100
load_env "$wan_env" SITE_
load_env "$wan_env" LINK_
declare -A ns=([a]=$SITE_A_NS [b]=$SITE_B_NS [c]=$SITE_C_NS) id=()
for s in a b c; do
    mkdir -p "$work/$s"
    id[$s]=$("$bin" node-id --data-dir "$work/$s/data" 2>/dev/null)
done
say "A (HQ)       ns ${ns[a]}  node ${id[a]:0:10}…  WAN $LINK_A_B_A (to B), $LINK_A_C_A (to C)"
say "B (regional) ns ${ns[b]}  node ${id[b]:0:10}…  WAN $LINK_A_B_B (to A), $LINK_B_C_B (to C)"
say "C (branch)   ns ${ns[c]}  node ${id[c]:0:10}…  WAN $LINK_B_C_C (to B), $LINK_A_C_C (to A)"
say "             LAN $LAB_SUBNET: node $LAB_SERVER_IP (proxy-DHCP, TFTP, HTTP), office router's DHCP $LAB_SITE_IP"
say "WAN: A–B 10 ms, B–C 10 ms, A–C 80 ms round trip, 100 Mbit/s each (tests/wan/wan.sh)"

# The office router: a plain DHCP server handing out addresses only (no boot options).
tests/pxe/lab.sh site-dhcp "$lab_env" 2>>"$logs/lab.log" || die "site DHCP server: $(tail -n 5 "$logs/lab.log")"
# IPv6 router advertisements saying "no router here", so iPXE does not wait for IPv6.
tests/pxe/lab.sh ra "$lab_env" 2>>"$logs/lab.log" || die "RA responder: $(tail -n 5 "$logs/lab.log")"

# The nodes. Each trusts the operator's key and knows the other two sites.
public=$("$bin" keygen --out "$work/publisher.key" 2>/dev/null)
peer() { printf '"%s@%s:%s"' "${id[$1]}" "$2" "$FLEET_PORT"; }
write_config() { # write_config SITE PEER PEER SERVING...
    local s=$1 p1=$2 p2=$3
    shift 3
    {
        echo "data_dir = \"$work/$s/data\""
        echo "trusted_publishers = [\"$public\"]"
        printf '%s\n' "$@"
        echo "[fleet]"
        echo "listen = \"0.0.0.0:$FLEET_PORT\""
        echo "peers = [$p1, $p2]"
    } >"$logs/node-$s.toml"
}
sync_only=('[dhcp]' 'mode = "off"' 'server_ip = "127.0.0.1"' '[tftp]' 'enabled = false'
    '[http]' 'listen = "127.0.0.1:8080"')
write_config a "$(peer b "$LINK_A_B_B")" "$(peer c "$LINK_A_C_C")" "${sync_only[@]}"
write_config b "$(peer a "$LINK_A_B_A")" "$(peer c "$LINK_B_C_C")" "${sync_only[@]}"
write_config c "$(peer b "$LINK_B_C_B")" "$(peer a "$LINK_A_C_A")" \
    '[dhcp]' 'mode = "proxy"' "interface = \"$LAB_IFACE_SERVER\"" "server_ip = \"$LAB_SERVER_IP\"" \
    '[http]' 'listen = "0.0.0.0:80"' \
    '[boot]' 'default_image = "e2e"' 'efi_x64 = "snponly.efi"'
for s in a b c; do
    ip netns exec "${ns[$s]}" setsid "$bin" node --config "$logs/node-$s.toml" \
        </dev/null >"$logs/node-$s.log" 2>&1 &
    pids+=("$!")
done
for s in a b c; do
    for ((i = 0; ; i++)); do
        grep -q "netboot node up" "$logs/node-$s.log" && break
        ((i < 300)) || die "node $s not up after 30 s: $(tail -n 20 "$logs/node-$s.log")"
        sleep 0.1
    done
done
say "nodes up; configs in demo-logs/node-{a,b,c}.toml. C's:"
tidy <"$logs/node-c.toml" | sed 's/^/     /'

step "3. the operator signs two releases at HQ and publishes them to A's node"
say "\$ netboot keygen --out publisher.key      # $public"
publish() {
    local a shown=()
    for a in "$@"; do [[ $a == *' '* ]] && shown+=("'$a'") || shown+=("${a##*/}"); done
    say "\$ netboot publish --key publisher.key --to ${id[a]:0:10}…@$LINK_A_B_A:$FLEET_PORT ${shown[*]}"
    ip netns exec "${ns[a]}" "$bin" publish --key "$work/publisher.key" \
        --to "${id[a]}@$LINK_A_B_A:$FLEET_PORT" "$@" 2>&1 | tee -a "$logs/publish.log" | tidy | sed 's/^/     /'
}
publish --name ipxe --file /usr/lib/ipxe/undionly.kpxe --file /usr/lib/ipxe/ipxe.efi \
    --file /usr/lib/ipxe/snponly.efi
publish --name e2e --kernel "$image/vmlinuz" --initrd "$image/initrd.img" --file "$image/check.bin" \
    --cmdline 'console=ttyS0 quiet panic=-1 netboot_check={{image_url}}/check.bin'
published_at=$SECONDS

step "4. the fleet passes the releases on; waiting for the branch office (C) to hold both"
status_c() { ip netns exec "$LAB_NS_SERVER" curl -sf --max-time 5 "http://127.0.0.1/fleet/status.json"; }
for ((i = 0; ; i++)); do
    if status_c >"$logs/c-status.json" 2>/dev/null && python3 -c '
import json, sys
names = {r["name"] for r in json.load(open(sys.argv[1])).get("releases", [])}
sys.exit(0 if {"ipxe", "e2e"} <= names else 1)' "$logs/c-status.json"; then
        break
    fi
    ((i < 900)) || die "C does not hold both releases after 180 s: $(grep -h "fleet:" "$logs"/node-*.log | tail -n 20)"
    sleep 0.2
done
say "C holds both releases, verified, $((SECONDS - published_at)) s after the publish"
python3 - "$logs/c-status.json" "${id[a]}" "${id[b]}" <<'EOF' | indent
import json, sys
st = json.load(open(sys.argv[1]))
names = {sys.argv[2]: "A (HQ)", sys.argv[3]: "B (regional)"}
for r in sorted(st["releases"], key=lambda r: r["name"]):
    print(f"C holds {r['name']} v{r['version']}")
peers = sorted((p for p in st["peers"] if p["id"] in names), key=lambda p: p.get("rtt_ms") or 1e9)
total = sum(p["received_bytes"] for p in peers) or 1
print("bytes C received, nearest peer first:")
for p in peers:
    rtt = f"{p['rtt_ms']:.1f} ms" if p.get("rtt_ms") is not None else "?"
    n = p["received_bytes"]
    print(f"  from {names[p['id']]:<13} rtt {rtt:>8}: {n / 2**20:5.1f} MiB ({n} bytes, {100 * n / total:.0f} %)")
EOF
tests/wan/wan.sh check "$wan_env" >/dev/null 2>>"$logs/wan.log" ||
    say "WARNING: a WAN delayer died (see $logs/wan.log): the link delays above are not trustworthy"

step "5. the branch office loses its WAN links; its clients still boot from C's node"
wan cut a c down
wan cut b c down
if ip netns exec "$LAB_NS_SERVER" ping -c 1 -W 1 "$LINK_B_C_B" >/dev/null 2>&1 ||
    ip netns exec "$LAB_NS_SERVER" ping -c 1 -W 1 "$LINK_A_C_A" >/dev/null 2>&1; then
    die "C can still reach A or B after the cut"
fi
say "C cannot reach A ($LINK_A_C_A) or B ($LINK_B_C_B) any more"
result="" status=0
for mode in bios uefi-pxe; do
    rc=0
    # in the background, so that a signal to this script is handled at once (see cleanup)
    LAB_ENV=$lab_env tests/pxe/run-qemu.sh "$mode" "$logs/serial-$mode.log" 150 \
        >"$logs/qemu-$mode.out" 2>"$logs/qemu-$mode.err" &
    boot_pid=$!
    wait "$boot_pid" || rc=$?
    boot_pid=""
    sed "s#$logs/#demo-logs/#" "$logs/qemu-$mode.out" | indent
    if [[ $rc -eq 0 ]]; then
        result+="${result:+, }$mode PASS"
    else
        result+="${result:+, }$mode FAIL"
        status=1
        indent <"$logs/qemu-$mode.err"
    fi
done

step "6. what the nodes logged"
declare -A site=([a]="A (HQ)" [b]="B (regional)" [c]="C (branch office)")
for s in a b c; do
    say "-- fleet log of ${site[$s]}:"
    grep -E "fleet:|accepted" "$logs/node-$s.log" | logline | indent || true
done
say "-- C's per-client log (DHCP, TFTP, HTTP):"
grep -E " (dhcp: [0-9a-f]{2}:|http [0-9]|tftp )" "$logs/node-c.log" | logline | indent || true
say "-- the clients' consoles:"
for mode in bios uefi-pxe; do
    grep -ah "NETBOOT-E2E" "$logs/serial-$mode.log" 2>/dev/null |
        tidy | sed "s/^/$mode: /" | indent || true
done

step "7. the branch office's node as its operator sees it: netboot status, the status page, /metrics"
c_url="http://$LAB_SERVER_IP"
in_c() { ip netns exec "$LAB_NS_SERVER" "$@"; }
in_c "$bin" status --node "$c_url/" 2>&1 | tidy | indent || say "WARNING: netboot status failed"
in_c curl -sf --max-time 5 "$c_url/" >"$logs/c-status.html" || say "WARNING: no status page at $c_url/"
in_c curl -sf --max-time 5 "$c_url/metrics" >"$logs/c-metrics.txt" || say "WARNING: no metrics at $c_url/metrics"
# A picture of the page (Debian's chromium, installed with the tests' packages). Inside C's
# namespace, with no name resolution, so it can reach nothing but the node.
profile=$(mktemp -d "$work/chromium.XXXXXX")
in_c chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE $LAB_SERVER_IP" --no-proxy-server \
    --user-data-dir="$profile" --window-size=420,1100 --screenshot="$logs/c-status.png" \
    "$c_url/" >/dev/null 2>&1 || say "(no screenshot: chromium failed)"

step "result: $result — $((SECONDS - start_time)) s in all; logs in ./demo-logs/"
say "C's status page: $c_url/  (inside namespace $LAB_NS_SERVER: ip netns exec $LAB_NS_SERVER curl $c_url/;"
say "  kept as demo-logs/c-status.html and demo-logs/c-status.png)"
say "C's metrics: $c_url/metrics (all of them in demo-logs/c-metrics.txt); what they show:"
grep -E '^netboot_(dhcp_requests_total|boot_stage_reached_total|transfers_total|fleet_received_bytes_total|fleet_sync_lag_seconds|releases|integrity_refusals_total)' \
    "$logs/c-metrics.txt" 2>/dev/null | tidy | indent || true
exit "$status"
