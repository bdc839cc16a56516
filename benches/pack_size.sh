#!/usr/bin/env bash
# Measures first-backup time, peak memory and file count for several pack sizes on
# the same generated corpus (half random, half compressible text, some duplicates).
# Usage: benches/pack_size.sh [CORPUS_MIB]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bin cairn
CAIRN="$PWD/target/release/cairn"
MIB=${1:-1024}
WORK=$(mktemp -d /tmp/cairn-packsize.XXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/src"
python3 - "$WORK/src" "$MIB" <<'PY'
import os, random, sys
root, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
words = [b"backup", b"cairn", b"log", b"error", b"user", b"request", b"200", b"GET", b"/index.html"]
made = 0
i = 0
while made < mib << 20:
    size = rng.randint(1, 32) << 20
    d = os.path.join(root, f"d{i % 17}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}"), "wb") as f:
        if i % 2 == 0:
            f.write(os.urandom(size))
        else:
            line = b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
            f.write((line * (size // len(line) + 1))[:size])
    made += size
    i += 1
PY
export CAIRN_PASSWORD=bench
printf "%-10s %10s %10s %12s %10s\n" "pack MiB" "seconds" "MB/s" "peak RSS MiB" "files"
for p in 4 16 64; do
    repo="$WORK/repo-$p"
    "$CAIRN" -r "$repo" init --pack-size "$p" -q >/dev/null
    sync
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$CAIRN" -r "$repo" backup -q "$WORK/src" >/dev/null
    read -r secs kib < "$WORK/time"
    files=$(find "$repo" -type f | wc -l)
    mbs=$(python3 -c "print(f'{$MIB*1.048576/$secs:.0f}')")
    printf "%-10s %10s %10s %12s %10s\n" "$p" "$secs" "$mbs" "$((kib / 1024))" "$files"
done
