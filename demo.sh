#!/usr/bin/env bash
# The engine demo: builds conservator, generates a Collective Access–style media volume and
# SQL dump, backs them up into a local encrypted repository, changes ~2 % and backs up again,
# restores both into fresh directories and proves every byte identical, then checks every pack.
#   DEMO_DIR   work directory (default /var/tmp/conservator-demo)
#   DEMO_SCALE corpus scale (default 0.05 = ~80 MB; 1.0 = ~1.55 GB)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${DEMO_DIR:-/var/tmp/conservator-demo}
SCALE=${DEMO_SCALE:-0.05}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/conservator/target}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

command -v cargo >/dev/null || { echo "demo: cargo is missing: install Rust from https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || { apt-get install -y -q python3 >&2; }

say "building conservator (target dir $CARGO_TARGET_DIR)"
(cd "$ROOT" && cargo build --locked -q -p conservator)
BIN=$CARGO_TARGET_DIR/debug/conservator

say "generating a media volume and a SQL dump under $DIR/corpus (scale $SCALE)"
python3 "$ROOT/bench/corpus.py" revert --dir "$DIR/corpus" >/dev/null 2>&1 || true
python3 "$ROOT/bench/corpus.py" ensure --dir "$DIR/corpus" --scale "$SCALE"
DATA=$DIR/corpus/data

export CONSERVATOR_REPO=$DIR/repo
export CONSERVATOR_PASSWORD=${CONSERVATOR_PASSWORD:-demo passphrase, use a real one}
rm -rf "$DIR/repo" "$DIR/restore-1" "$DIR/restore-2"

say "conservator repo init"
"$BIN" repo init
say "day 1: backup of the media tree and the dump as a stream"
"$BIN" repo backup --tag tenant=ca-demo "$DATA/media" --stream db.sql -- cat "$DATA/dump/collectiveaccess.sql"
say "day 2: ~2 % of the bytes change, backup again (incremental)"
python3 "$ROOT/bench/corpus.py" change --dir "$DIR/corpus"
"$BIN" repo backup --tag tenant=ca-demo "$DATA/media" --stream db.sql -- cat "$DATA/dump/collectiveaccess.sql"
"$BIN" repo snapshots

say "restore the latest snapshot and its stream, and compare"
"$BIN" repo restore latest --target "$DIR/restore-2"
"$BIN" repo restore latest --stream db.sql >"$DIR/restore-2.sql"
diff -r --no-dereference "$DATA/media" "$DIR/restore-2$DATA/media" && echo "media: identical"
cmp "$DATA/dump/collectiveaccess.sql" "$DIR/restore-2.sql" && echo "dump: identical"

say "check --read-data: decrypt and verify every pack"
"$BIN" repo check --read-data
"$BIN" repo stats
python3 "$ROOT/bench/corpus.py" revert --dir "$DIR/corpus" >/dev/null
say "done: repository at $DIR/repo (CONSERVATOR_REPO=$DIR/repo conservator repo snapshots)"
