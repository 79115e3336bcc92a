# Shared by the test image builders (build-boot-image.sh for x86, build-arm64-image.sh):
# the check file and the guest side of the test (/init, udhcpc script). Sourced.

IMAGE_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGE_TOOL=$(basename "$0" .sh)

# The builder's own help (its header comment), errors and progress, named after the builder.
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "$IMAGE_TOOL: ERROR: $*" >&2; exit 1; }
log() { echo "$IMAGE_TOOL: $*" >&2; }
need_pkg() { # need_pkg CMD DEBIAN_PACKAGE — exit 2 naming the package when CMD is missing
    command -v "$1" >/dev/null 2>&1 || {
        echo "$IMAGE_TOOL: ERROR: '$1' not found — install the Debian package: apt-get install $2" >&2
        exit 2
    }
}

# image_need_tools: the commands every image build runs.
image_need_tools() {
    local c
    for c in apt-get:apt apt-cache:apt dpkg-deb:dpkg cpio:cpio gzip:gzip flock:util-linux \
        sha256sum:coreutils python3:python3-minimal; do
        need_pkg "${c%%:*}" "${c#*:}"
    done
}
IMAGE_CHECK_SIZE=262144
IMAGE_CHECK_SEED=netboot-e2e-check-v1

# image_inputs_hash: one hash over what every image built from this library depends on
# (for the builders' cache stamps).
image_inputs_hash() {
    {
        sha256sum "$IMAGE_LIB_DIR/image-lib.sh" "$IMAGE_LIB_DIR/guest/init" \
            "$IMAGE_LIB_DIR/guest/udhcpc.script" | cut -d' ' -f1
        echo "check=$IMAGE_CHECK_SEED/$IMAGE_CHECK_SIZE"
    } | sha256sum | cut -d' ' -f1
}

# image_check_bin OUT: deterministic pseudo-random data the guest fetches and checks; prints
# its sha256.
image_check_bin() {
    python3 - "$1" "$IMAGE_CHECK_SEED" "$IMAGE_CHECK_SIZE" <<'PY'
import hashlib, sys
out, seed, size = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
buf = bytearray()
i = 0
while len(buf) < size:
    buf += hashlib.sha256(seed + i.to_bytes(8, "big")).digest()
    i += 1
with open(out, "wb") as f:
    f.write(bytes(buf[:size]))
PY
    sha256sum "$1" | cut -d' ' -f1
}

# image_guest_files ROOT SERIAL CHECK_SHA256 MODULE...: the test's /init, its udhcpc script,
# the check file's hash, the serial port for the markers (ttyS0, ttyAMA0) and the modules
# /init loads, in order, into the initramfs tree ROOT.
image_guest_files() {
    local root=$1 serial=$2 sha=$3
    shift 3
    mkdir -p "$root/etc"
    install -m 755 "$IMAGE_LIB_DIR/guest/init" "$root/init"
    install -m 755 "$IMAGE_LIB_DIR/guest/udhcpc.script" "$root/etc/udhcpc.script"
    echo "$serial" >"$root/etc/netboot-serial"
    echo "$sha" >"$root/etc/check.sha256"
    printf '%s\n' "$@" >"$root/etc/modules"
}

# image_pack ROOT OUT: a reproducible gzipped cpio (newc) of ROOT: fixed owners and mtimes,
# sorted, gzip -n.
image_pack() {
    find "$1" -exec touch -h -d @0 {} +
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort |
        cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9 -n >"$2"
}

# image_apt_download DIR PACKAGE VERSION SIZE_TEXT: the package's .deb, downloaded once into
# DIR with apt-get (the machine's own apt sources; works for any architecture's package);
# prints its path. Returns 1 (with a message) if apt cannot get it.
image_apt_download() {
    local dir=$1 pkg=$2 ver=$3 deb dl f
    deb="$dir/${pkg}_${ver//:/%3a}.deb"
    if [[ ! -s $deb ]]; then
        echo "image: downloading $pkg $ver into $dir ($4)" >&2
        mkdir -p "$dir"
        dl=$(mktemp -d "$dir/.dl.XXXXXX")
        chmod 755 "$dl"
        chown _apt "$dl" 2>/dev/null || true # lets apt download sandboxed
        if ! (cd "$dl" && apt-get download -q "$pkg=$ver" >&2); then
            rm -rf "$dl"
            echo "image: ERROR: apt-get download $pkg=$ver failed" >&2
            return 1
        fi
        f=$(find "$dl" -maxdepth 1 -name '*.deb' | head -n1)
        if [[ -z $f ]]; then
            rm -rf "$dl"
            echo "image: ERROR: apt-get download $pkg=$ver produced no .deb" >&2
            return 1
        fi
        mv "$f" "$deb"
        rm -rf "$dl"
    fi
    echo "$deb"
}
