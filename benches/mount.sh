#!/usr/bin/env bash
# `cairn mount` against `restore` on the same repository (issue 9's targets):
# - a 1 GiB file of random bytes read sequentially through the mount vs restored;
# - `ls -lR` of a snapshot of 50,000 small files in 2,000 directories, first look
#   (no tree loaded yet) and again (trees loaded).
# Needs /dev/fuse and fusermount3 (Debian fuse3). Usage: benches/mount.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bin cairn
CAIRN="$PWD/target/release/cairn"
WORK=$(mktemp -d /tmp/cairn-mountbench.XXXX)
trap 'fusermount3 -u "$WORK/mnt" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export CAIRN_PASSWORD=bench CAIRN_CACHE_DIR="$WORK/cache"
mkdir -p "$WORK/big" "$WORK/mnt"
head -c 1073741824 /dev/urandom > "$WORK/big/file"
python3 benches/corpus.py small "$WORK/small" --scale 1 >/dev/null
"$CAIRN" -r "$WORK/repo" init >/dev/null
id_of() { "$CAIRN" -r "$WORK/repo" backup --json "$1" | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot_id"][:8])'; }
big_id=$(id_of "$WORK/big")
small_id=$(id_of "$WORK/small")
secs() { python3 -c 'import subprocess,sys,time; t=time.time(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); print(f"{time.time()-t:.2f}")' "$@"; }
r=$(secs "$CAIRN" -r "$WORK/repo" restore "$big_id" --target "$WORK/restored")
"$CAIRN" -r "$WORK/repo" mount "$WORK/mnt" 2>/dev/null &
for _ in $(seq 50); do mountpoint -q "$WORK/mnt" && break; sleep 0.1; done
m=$(secs cat "$WORK/mnt/ids/$big_id$WORK/big/file")
l1=$(secs ls -lR "$WORK/mnt/ids/$small_id")
l2=$(secs ls -lR "$WORK/mnt/ids/$small_id")
n=$(find "$WORK/mnt/ids/$small_id$WORK/small" -type f | wc -l)
echo "1 GiB file: restore ${r} s, read through the mount ${m} s"
echo "ls -lR of ${n} files: first ${l1} s, again ${l2} s"
