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
# commit measured (marked when the node's sources had uncommitted changes).
bench_build() {
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
