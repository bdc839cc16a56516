#!/usr/bin/env bash
# Backup and restore of the mixed corpus (benches/corpus.py, ~2 GiB at scale 1) into a
# local repository and into an S3 repository on moto (a real S3 server, in Python, on
# loopback), and the requests a second, unchanged ship to S3 makes (issue 25).
#
#   benches/s3_throughput.sh [SCALE]        (default 1; needs moto: CAIRN_MOTO_SERVER)
#
# Repository and restores on BENCH_DIR (default /var/tmp: a real disk). moto keeps
# objects in its own memory, so the S3 figures are the client and a slow server
# together: a floor for a real store on a fast network, not a ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-1}
cargo build --release -q --bin cairn
BIN="$PWD/target/release/cairn"
MOTO=${CAIRN_MOTO_SERVER:-moto_server}
DIR=$(mktemp -d "${BENCH_DIR:-/var/tmp}/cairn-s3bench.XXXX")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$MOTO" -H 127.0.0.1 -p "$PORT" > "$DIR/moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT))" 2>/dev/null; do sleep 0.2; done
python3 - "$PORT" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
c.request("PUT", "/bench")
assert c.getresponse().status == 200
PY
export CAIRN_PASSWORD=bench CAIRN_CACHE_DIR="$DIR/cache" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
python3 benches/corpus.py mixed "$DIR/src" --scale "$SCALE"
SIZE=$(du -sm "$DIR/src" | cut -f1)
S3="s3:http://127.0.0.1:$PORT/bench/repo"
t() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
row() { printf "%-8s %-8s %7.2f s  %6.0f MiB/s\n" "$1" "$2" "$3" "$(echo "$SIZE / $3" | bc -l)"; }
"$BIN" -r "$DIR/local" init -q
"$BIN" -r "$S3" init -q
echo "mixed corpus: $SIZE MiB"
row local backup "$(t "$BIN" -r "$DIR/local" backup -q "$DIR/src")"
row s3 backup "$(t "$BIN" -r "$S3" backup -q "$DIR/src")"
row local restore "$(t "$BIN" -r "$DIR/local" restore latest -q --target "$DIR/r1")"
row s3 restore "$(t "$BIN" -r "$S3" restore latest -q --target "$DIR/r2")"
DEST="s3:http://127.0.0.1:$PORT/bench/shipped"
"$BIN" -r "$DIR/local" ship -q "$DEST"
echo "second unchanged ship: $("$BIN" -r "$DIR/local" ship "$DEST" | grep 'S3 requests')"
