#!/usr/bin/env bash
# `cairn ship` against `rclone sync --transfers 16` of the same repository, both to
# cairn-b2-emulator on loopback with a WAN round trip added to every request: the
# first ship of the whole repository, then a ship after a backup adding about 1%.
# Wall time, bytes, and transactions by billing class (counted by the emulator).
# Usage: benches/ship_vs_rclone.sh [CORPUS_MIB [LATENCY_MS [RUNS]]]
#        (defaults 2048, 40, 1; needs rclone)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bin cairn --bin cairn-b2-emulator
BIN="$PWD/target/release"
MIB=${1:-2048}
LATENCY=${2:-40}
RUNS=${3:-1}
# On a real disk, as users run it (override with BENCH_DIR).
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/cairn-shipbench.XXXX")
EMU=
trap 'kill $EMU 2>/dev/null || true; rm -rf "$WORK" "${EMU_DATA:-}"' EXIT
# The server's disk and memory are not what is measured (B2's are not the user's): the
# emulator keeps only the SHA1 and size of uploads above 1 MB (EMU_KEEP=1 keeps them all).
# On this VM every fresh page the server wrote cost a fault the host serves (free page
# reporting hands freed memory back), which made the shared server the bottleneck and
# the noise: 1.4 to 7.6 s of emulator CPU for the same 1.1 GB.
EMU_DATA=${EMU_DATA:-$WORK/emu}
DISCARD=(--discard-above 1000000)
[ -n "${EMU_KEEP:-}" ] && DISCARD=()
"$BIN/cairn-b2-emulator" --data "$EMU_DATA" --latency-ms "$LATENCY" "${DISCARD[@]}" > "$WORK/emu.out" &
EMU=$!
sleep 1
URL=$(sed -n 's/^listening on //p' "$WORK/emu.out")
export CAIRN_PASSWORD=bench CAIRN_B2_ENDPOINT=$URL B2_APPLICATION_KEY_ID=testkeyid B2_APPLICATION_KEY=testkey CAIRN_CACHE_DIR=$WORK/cache
export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_E_TYPE=b2 RCLONE_CONFIG_E_ACCOUNT=testkeyid RCLONE_CONFIG_E_KEY=testkey RCLONE_CONFIG_E_ENDPOINT=$URL
mkdir -p "$WORK/src"
# Files of 1-64 MiB, random (incompressible: every byte is shipped).
python3 - "$WORK/src" "$MIB" <<'PY'
import os, random, sys
d, total = sys.argv[1], int(sys.argv[2]) << 20
r, i = random.Random(7), 0
while total > 0:
    n = min(total, int(2 ** r.uniform(20, 26)))
    with open(os.path.join(d, f"f{i:04d}"), "wb") as f:
        f.write(os.urandom(n))
    total, i = total - n, i + 1
PY
REPO="$WORK/repo"
"$BIN/cairn" -r "$REPO" init -q
"$BIN/cairn" -r "$REPO" backup -q "$WORK/src"
measure() {
    curl -s -X POST "$URL/emulator/stats/reset" > /dev/null
    local t0 t1 stats
    local e0 e1
    e0=$(awk '{print $14 + $15}' /proc/$EMU/stat)
    t0=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$WORK/cpu" "$@" > /dev/null
    t1=$(date +%s.%N)
    e1=$(awk '{print $14 + $15}' /proc/$EMU/stat)
    stats=$(curl -s "$URL/emulator/stats")
    python3 - "$stats" "$t0" "$t1" "$(cat "$WORK/cpu")" "$(( (e1 - e0) ))" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); c = s["calls"]
parts = c.get("b2_upload_part", 0)
user, system = sys.argv[4].split()
emu = int(sys.argv[5]) / 100
print(f'{float(sys.argv[3]) - float(sys.argv[2]):7.2f} s (cpu {user} user {system} sys; emulator {emu:.2f})  uploads {c.get("b2_upload_file", 0):4d} parts {parts:4d}  A {s["class_a"]:5d}  B {s["class_b"]:4d}  C {s["class_c"]:4d}')
PY
}
echo "repository $(du -sh "$REPO" | cut -f1), $(find "$REPO" -type f | wc -l) files; latency ${LATENCY} ms"
first_cairn() { printf "first  cairn ship:   "; measure "$BIN/cairn" -r "$REPO" ship -q --create-bucket "b2:bench-cairn$1/repo"; }
first_rclone() { printf "first  rclone sync:  "; measure rclone sync --transfers 16 "$REPO" "e:bench-rclone$1/repo"; }
# Runs alternate which tool goes first (A B, B A, ...), each into fresh buckets.
for run in $(seq 1 "$RUNS"); do
    if [ $((run % 2)) = 1 ]; then first_cairn "$run"; first_rclone "$run"
    else first_rclone "$run"; first_cairn "$run"; fi
done
head -c $((MIB * 1024 * 1024 / 100)) /dev/urandom > "$WORK/src/new.bin"
"$BIN/cairn" -r "$REPO" backup -q "$WORK/src"
printf "1%%     cairn ship:   "; measure "$BIN/cairn" -r "$REPO" ship -q b2:bench-cairn1/repo
printf "1%%     rclone sync:  "; measure rclone sync --transfers 16 "$REPO" e:bench-rclone1/repo
