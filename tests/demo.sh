#!/usr/bin/env bash
# The netboot demo (as root on Debian). Until the serving and fleet issues land, it shows the
# foundation: make a publisher key, publish a signed image into a node's store, list it,
# verify it, then damage a byte on disk and watch `netboot verify` catch it.
#
#   bash tests/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p netboot-cli
bin="$PWD/target/debug/netboot"
work=$(mktemp -d /tmp/netboot-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== netboot keygen"
key=$("$bin" keygen --out "$work/publisher.key")
echo "trusted publisher: $key"
cat > "$work/netboot.toml" <<TOML
data_dir = "data"
trusted_publishers = ["$key"]
[store]
keep_versions = 2
TOML

head -c 8M /dev/urandom > "$work/vmlinuz"
head -c 2M /dev/urandom > "$work/initrd.img"
echo "== netboot publish"
"$bin" publish --config "$work/netboot.toml" --key "$work/publisher.key" --name demo \
    --kernel "$work/vmlinuz" --initrd "$work/initrd.img" \
    --cmdline 'console=ttyS0 fetch={{image_url}}/initrd.img'
echo "== netboot images"
"$bin" images --config "$work/netboot.toml" --long
echo "== netboot verify"
"$bin" verify --config "$work/netboot.toml"
echo "== flipping one bit of the kernel on disk, behind the store's back"
blob=$(ls "$work"/data/blobs/data/*.data | head -1)
printf '\x42' | dd of="$blob" bs=1 seek=4096 conv=notrunc status=none
if "$bin" verify --config "$work/netboot.toml"; then
    echo "demo: verify did not notice the damage" >&2
    exit 1
fi
echo "== verify caught it (exit status 1), as it should"
