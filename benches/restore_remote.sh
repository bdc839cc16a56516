#!/usr/bin/env bash
# Restore from B2 against restore from a local directory (issue 18, item 5).
#
#   benches/restore_remote.sh [--scale S] [--latency-ms N]
#
# Builds the release binaries, makes the small and mixed corpora (benches/corpus.py),
# backs each up into a local repository on BENCH_DIR (default /var/tmp: a real disk, as
# users run it), ships it to the B2 emulator on loopback, then times three restores of
# the latest snapshot into a fresh target: from the local repository, from the emulator
# with no added latency, and from the emulator with --latency-ms N (default 40) on
# every call. Prints seconds, the ratio to the local restore, and the most requests the
# emulator served at once (fetches in flight). Run on demand; not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=0.1
latency=40
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) scale=$2; shift 2 ;;
        --latency-ms) latency=$2; shift 2 ;;
        *) echo "usage: $0 [--scale S] [--latency-ms N]" >&2; exit 2 ;;
    esac
done
dir=${BENCH_DIR:-/var/tmp/cairn-restore-bench}
# CAIRN_BIN and EMULATOR_BIN name other builds (an older cairn for a before/after).
if [ -z "${CAIRN_BIN:-}" ] || [ -z "${EMULATOR_BIN:-}" ]; then
    cargo build --release --quiet --bin cairn --bin cairn-b2-emulator
fi
cairn=${CAIRN_BIN:-$PWD/target/release/cairn}
emulator=${EMULATOR_BIN:-$PWD/target/release/cairn-b2-emulator}
rm -rf "$dir"
mkdir -p "$dir"
export CAIRN_PASSWORD=restore-bench CAIRN_CACHE_DIR="$dir/cache"
export B2_APPLICATION_KEY_ID=testkeyid B2_APPLICATION_KEY=testkey
unset CAIRN_REPOSITORY CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND

emu_pid=
start_emulator() { # $1: latency in ms
    [ -n "$emu_pid" ] && kill "$emu_pid" && wait "$emu_pid" 2>/dev/null || true
    rm -f "$dir/emu.out.$1"
    mkfifo "$dir/emu.out.$1"
    "$emulator" --listen 127.0.0.1:0 --data "$dir/emu" --latency-ms "$1" >"$dir/emu.out.$1" &
    emu_pid=$!
    read -r line <"$dir/emu.out.$1"
    export CAIRN_B2_ENDPOINT=${line#listening on }
    cat "$dir/emu.out.$1" >/dev/null &
}
trap '[ -n "$emu_pid" ] && kill $emu_pid 2>/dev/null || true' EXIT

timed() { # prints the seconds the command took
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
}

restore_from() { # $1 repo location, $2 target
    rm -rf "$2"
    sync
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    timed "$cairn" -q --no-progress -r "$1" restore latest --target "$2"
}

printf '%-6s %-22s %9s %8s %10s\n' corpus source seconds ratio in_flight
for corpus in small mixed; do
    python3 benches/corpus.py "$corpus" "$dir/src-$corpus" --scale "$scale" >/dev/null
    repo="$dir/repo-$corpus"
    "$cairn" -q -r "$repo" init >/dev/null
    "$cairn" -q --no-progress -r "$repo" backup "$dir/src-$corpus" >/dev/null
    start_emulator 0
    "$cairn" -q --no-progress -r "$repo" ship "b2:cairn-bench/$corpus" --create-bucket >/dev/null
    t_local=$(restore_from "$repo" "$dir/t")
    printf '%-6s %-22s %9.2f %8s %10s\n' "$corpus" local "$t_local" 1.00 -
    for l in 0 "$latency"; do
        start_emulator "$l"
        rm -rf "$CAIRN_CACHE_DIR"
        "$cairn" -q -r "b2:cairn-bench/$corpus" snapshots >/dev/null 2>&1
        curl -s -X POST "$CAIRN_B2_ENDPOINT/emulator/stats/reset" >/dev/null
        t=$(restore_from "b2:cairn-bench/$corpus" "$dir/t")
        inflight=$(curl -s "$CAIRN_B2_ENDPOINT/emulator/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_in_flight"])')
        printf '%-6s %-22s %9.2f %8.2f %10s\n' "$corpus" "emulator, ${l} ms" "$t" "$(echo "$t / $t_local" | bc -l)" "$inflight"
    done
    diff -r "$dir/src-$corpus" "$dir/t$dir/src-$corpus" >/dev/null && echo "$corpus: the last restore matches the source"
done
