#!/usr/bin/env bash
# cairn side by side with restic, rustic and borg on the same corpora, one tool after
# the other, page cache warm. Steps: init, first backup, unchanged re-backup, backup
# after a 1% mutation, restore of the latest snapshot, forget+prune, check. Records wall
# time and peak RSS (/usr/bin/time) and repository size; prints one table per corpus
# with cairn's ratio to each tool (>1 means cairn is faster / smaller).
#
# Usage: benches/compare.sh [--scale S] [--runs N] [--tools "cairn restic rustic borg"] [--corpus "small mixed"]
# Installs restic and borgbackup (Debian) and rustic (cargo install rustic-rs) when missing.
# Everything happens under $BENCH_DIR (default /var/tmp/cairn-bench: a real disk
# filesystem, as users restore to; /tmp is tmpfs on many systems, which hides the
# kernel's cost of creating files); results go to $BENCH_DIR/results.tsv and the tables
# to stdout.
#
# Restore is measured twice more per run, in A B B A order (each tool first once per
# pair), into fresh directories: on the disk (restore_disk) and on tmpfs (/dev/shm,
# restore_tmpfs); the tables give the minimum of those. Before them the disk is left
# alone for 35 s: ext4 allocates new inodes around ones deleted in the last 30 s
# (`recently_deleted()` in the inode allocator, most of the kernel time of a restore
# right after `rm -rf` of 50,000 files), which made back-to-back runs differ 3x.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=1 RUNS=3 TOOLS="cairn restic rustic borg" CORPORA="small mixed"
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --tools) TOOLS=$2; shift 2 ;;
    --corpus) CORPORA=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
W=${BENCH_DIR:-/var/tmp/cairn-bench}
mkdir -p "$W"
FS=$(stat -f -c %T "$W")
echo "benchmark directory $W on $FS"
[ "$FS" = tmpfs ] && echo "warning: $W is tmpfs; set BENCH_DIR to a directory on a disk" >&2
SHM=/dev/shm/cairn-bench-restore
export PASS=bench-password-not-secret

need() { command -v "$1" >/dev/null 2>&1; }
for t in $TOOLS; do
  case $t in
    restic) need restic || apt-get install -y -q restic >/dev/null ;;
    borg) need borg || apt-get install -y -q borgbackup >/dev/null ;;
    rustic) need rustic || cargo install --locked -q rustic-rs ;;
  esac
done
need /usr/bin/time || apt-get install -y -q time >/dev/null
cargo build --release -q --bin cairn
CAIRN="$PWD/target/release/cairn"
# The raw single-pass limit (read + hash + compress + encrypt on all cores, nothing stored).
SINGLE_PASS=$(cargo bench -q --no-run --bench single_pass --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and m["target"]["name"] == "single_pass"][-1])')

# run TOOL STEP CMD...: times one step, appends "tool corpus run step seconds peak_kib".
run() {
  local tool=$1 step=$2; shift 2
  if ! /usr/bin/time -f "TIME %e %M" -o "$W/time.txt" "$@" >/dev/null 2>"$W/last.err"; then
    echo "$tool $step failed:" >&2; tail -5 "$W/last.err" >&2; exit 1
  fi
  echo -e "$tool\t$CORPUS\t$RUN\t$step\t$(grep '^TIME' "$W/time.txt" | awk '{print $2"\t"$3}')" >> "$W/results.tsv"
}

tool_steps() {
  local tool=$1 repo="$W/repo-$1" src="$W/src" target="$W/restore-$1"
  rm -rf "$repo" "$target"
  case $tool in
    cairn)
      export CAIRN_PASSWORD=$PASS CAIRN_REPOSITORY=$repo
      run cairn init "$CAIRN" init -q
      run cairn backup "$CAIRN" backup -q "$src"
      run cairn rebackup "$CAIRN" backup -q "$src"
      python3 benches/corpus.py mutate "$src" >/dev/null
      run cairn mutated "$CAIRN" backup -q "$src"
      run cairn restore "$CAIRN" restore latest --target "$target" -q
      run cairn prune "$CAIRN" forget --keep-last 1 --prune -q
      run cairn check "$CAIRN" check -q ;;
    restic)
      export RESTIC_PASSWORD=$PASS RESTIC_REPOSITORY=$repo
      run restic init restic init
      run restic backup restic backup -q "$src"
      run restic rebackup restic backup -q "$src"
      python3 benches/corpus.py mutate "$src" >/dev/null
      run restic mutated restic backup -q "$src"
      run restic restore restic restore latest --target "$target"
      run restic prune restic forget --keep-last 1 --prune
      run restic check restic check ;;
    rustic)
      local r=(rustic -r "$repo" --password "$PASS" --no-progress)
      run rustic init "${r[@]}" init
      run rustic backup "${r[@]}" backup "$src"
      run rustic rebackup "${r[@]}" backup "$src"
      python3 benches/corpus.py mutate "$src" >/dev/null
      run rustic mutated "${r[@]}" backup "$src"
      run rustic restore "${r[@]}" restore latest "$target"
      run rustic prune "${r[@]}" forget --keep-last 1 --prune
      run rustic check "${r[@]}" check ;;
    borg)
      export BORG_PASSPHRASE=$PASS BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
      run borg init borg init -e repokey-blake2 "$repo"
      run borg backup borg create "$repo::b1" "$src"
      run borg rebackup borg create "$repo::b2" "$src"
      python3 benches/corpus.py mutate "$src" >/dev/null
      run borg mutated borg create "$repo::b3" "$src"
      mkdir -p "$target"
      run borg restore sh -c "cd '$target' && borg extract '$repo::b3'"
      run borg prune sh -c "borg prune --keep-last 1 '$repo' && borg compact '$repo'"
      run borg check borg check "$repo" ;;
  esac
  echo -e "$tool\t$CORPUS\t$RUN\tsize\t$(du -sb "$repo" | cut -f1)\t0" >> "$W/results.tsv"
  rm -rf "$target"
}

# restore_to TOOL STEP TARGET: the tool's latest snapshot restored into TARGET (new).
restore_to() {
  local tool=$1 step=$2 target=$3 repo="$W/repo-$1"
  mkdir -p "$target"
  case $tool in
    cairn) CAIRN_REPOSITORY=$repo run cairn "$step" "$CAIRN" restore latest --target "$target" -q ;;
    restic) RESTIC_REPOSITORY=$repo run restic "$step" restic restore latest --target "$target" ;;
    rustic) run rustic "$step" rustic -r "$repo" --password "$PASS" --no-progress restore latest "$target" ;;
    borg) run borg "$step" sh -c "cd '$target' && borg extract '$repo::b3'" ;;
  esac
}

# The A B B A restores of one run (see the header), after every tool's steps.
restore_pairs() {
  sync; sleep 35
  local order k=0
  order="$TOOLS $(echo "$TOOLS" | tr ' ' '\n' | tac | tr '\n' ' ')"
  for t in $order; do
    k=$((k + 1))
    restore_to "$t" restore_disk "$W/restored-$k"
    if [ -d /dev/shm ]; then
      rm -rf "$SHM"; restore_to "$t" restore_tmpfs "$SHM"; rm -rf "$SHM"
    fi
  done
  rm -rf "$W"/restored-*
}

: > "$W/results.tsv"
for CORPUS in $CORPORA; do
  rm -rf "$W/pristine"
  python3 benches/corpus.py "$CORPUS" "$W/pristine" --scale "$SCALE"
  bytes=$(du -sb "$W/pristine" | cut -f1)
  echo -e "raw\t$CORPUS\t1\tbytes\t$bytes\t0" >> "$W/results.tsv"
  RUN=1 run raw read sh -c "find '$W/pristine' -type f -print0 | xargs -0 cat > /dev/null"
  for RUN in $(seq 1 "$RUNS"); do
    for t in $TOOLS; do
      rm -rf "$W/src"; cp -a "$W/pristine" "$W/src"
      find "$W/src" -type f -print0 | xargs -0 cat > /dev/null   # warm cache
      # The single pass right before cairn's steps, in every run: the ratio of the
      # two is taken within one run (this VM's speed drifts between minutes).
      [ "$t" = cairn ] && run raw single_pass "$SINGLE_PASS" "$W/src" --mode blocks
      tool_steps "$t"
    done
    restore_pairs
  done
done
python3 benches/table.py "$W/results.tsv"
