#!/usr/bin/env bash
# Incremental ship of a repository (about 1% new data) compared with `rclone sync` of
# the same repository, both to cairn-b2-emulator on loopback: bytes uploaded,
# transactions by billing class (from the emulator), wall time.
# Usage: benches/ship_vs_rclone.sh [CORPUS_MIB]   (default 512; needs rclone)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bin cairn --bin cairn-b2-emulator
BIN="$PWD/target/release"
MIB=${1:-512}
WORK=$(mktemp -d /tmp/cairn-shipbench.XXXX)
trap 'kill $EMU 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BIN/cairn-b2-emulator" --data "$WORK/emu" > "$WORK/emu.out" &
EMU=$!
sleep 1
URL=$(sed -n 's/^listening on //p' "$WORK/emu.out")
export CAIRN_PASSWORD=bench CAIRN_B2_ENDPOINT=$URL B2_APPLICATION_KEY_ID=testkeyid B2_APPLICATION_KEY=testkey CAIRN_CACHE_DIR=$WORK/cache
export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_E_TYPE=b2 RCLONE_CONFIG_E_ACCOUNT=testkeyid RCLONE_CONFIG_E_KEY=testkey RCLONE_CONFIG_E_ENDPOINT=$URL
mkdir -p "$WORK/src"
head -c $((MIB * 1024 * 1024)) /dev/urandom > "$WORK/src/base.bin"
REPO="$WORK/repo"
"$BIN/cairn" -r "$REPO" init -q
"$BIN/cairn" -r "$REPO" backup -q "$WORK/src"
"$BIN/cairn" -r "$REPO" ship -q b2:bench-cairn/repo
rclone sync "$REPO" e:bench-rclone/repo
head -c $((MIB * 1024 * 1024 / 100)) /dev/urandom > "$WORK/src/new.bin"
"$BIN/cairn" -r "$REPO" backup -q "$WORK/src"
measure() {
    curl -s -X POST "$URL/emulator/stats/reset" > /dev/null
    local t0=$(date +%s.%N)
    "$@" > /dev/null
    local t1=$(date +%s.%N)
    local stats=$(curl -s "$URL/emulator/stats")
    python3 - "$stats" "$t0" "$t1" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); c = s["calls"]
print(f'{float(sys.argv[3]) - float(sys.argv[2]):7.2f} s  uploads {c.get("b2_upload_file", 0):4d}  A {s["class_a"]:4d}  B {s["class_b"]:4d}  C {s["class_c"]:4d}')
PY
}
du_new=$(du -sb "$WORK/src/new.bin" | cut -f1)
echo "corpus ${MIB} MiB, new data ${du_new} bytes"
printf "cairn ship:   "; measure "$BIN/cairn" -r "$REPO" ship -q b2:bench-cairn/repo
printf "rclone sync:  "; measure rclone sync "$REPO" e:bench-rclone/repo
