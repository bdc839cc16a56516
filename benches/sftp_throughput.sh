#!/usr/bin/env bash
# Backup and restore of the mixed corpus (benches/corpus.py, ~2 GiB at scale 1) into a
# local repository and into an SFTP repository on a real sshd on loopback (its own
# config, host key and a throwaway client key), and the second, unchanged ship
# (issue 25).
#
#   benches/sftp_throughput.sh [SCALE]      (default 1; needs openssh-server)
#
# Repository, the server's directory and restores on BENCH_DIR (default /var/tmp: a
# real disk). ssh encrypts every byte (chacha20-poly1305 or AES-GCM) and sshd shares
# the two cores with cairn: a floor for a server on another machine.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-1}
cargo build --release -q --bin cairn
BIN="$PWD/target/release/cairn"
DIR=$(mktemp -d "${BENCH_DIR:-/var/tmp}/cairn-sftpbench.XXXX")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$DIR/sshd" "$DIR/server"
ssh-keygen -q -t ed25519 -N "" -f "$DIR/sshd/host_key"
ssh-keygen -q -t ed25519 -N "" -f "$DIR/sshd/client_key"
cp "$DIR/sshd/client_key.pub" "$DIR/sshd/authorized_keys"
cat > "$DIR/sshd/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/sshd/host_key
PidFile $DIR/sshd/sshd.pid
AuthorizedKeysFile $DIR/sshd/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
CONF
[ "$(id -u)" = 0 ] && mkdir -p /run/sshd
/usr/sbin/sshd -f "$DIR/sshd/sshd_config"
trap 'kill "$(cat "$DIR/sshd/sshd.pid")" 2>/dev/null || true; rm -rf "$DIR"' EXIT
USER_NAME=$(id -un)
export CAIRN_PASSWORD=bench CAIRN_CACHE_DIR="$DIR/cache"
export CAIRN_SFTP_COMMAND="ssh -F /dev/null -p $PORT -i $DIR/sshd/client_key -o IdentitiesOnly=yes -o UserKnownHostsFile=$DIR/sshd/known_hosts -o StrictHostKeyChecking=accept-new -o BatchMode=yes $USER_NAME@127.0.0.1 -s sftp"
python3 benches/corpus.py mixed "$DIR/src" --scale "$SCALE"
SIZE=$(du -sm "$DIR/src" | cut -f1)
SFTP="sftp:$USER_NAME@127.0.0.1:$DIR/server/repo"
t() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
row() { printf "%-8s %-8s %7.2f s  %6.0f MiB/s\n" "$1" "$2" "$3" "$(echo "$SIZE / $3" | bc -l)"; }
"$BIN" -r "$DIR/local" init -q
"$BIN" -r "$SFTP" init -q
echo "mixed corpus: $SIZE MiB"
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
row local backup "$(t "$BIN" -r "$DIR/local" backup -q "$DIR/src")"
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
row sftp backup "$(t "$BIN" -r "$SFTP" backup -q "$DIR/src")"
row local restore "$(t "$BIN" -r "$DIR/local" restore latest -q --target "$DIR/r1")"
row sftp restore "$(t "$BIN" -r "$SFTP" restore latest -q --target "$DIR/r2")"
DEST="sftp:$USER_NAME@127.0.0.1:$DIR/server/shipped"
"$BIN" -r "$DIR/local" ship -q --create-bucket "$DEST"
echo "second unchanged ship: $("$BIN" -r "$DIR/local" ship --json "$DEST" | tail -1)"
