#!/usr/bin/env bash
# The main job, on a real Collective Access tenant, with the embedded defaults (SQLite catalog,
# local repository):
#   1. installs what is missing (MariaDB), builds conservator and the tenant generator;
#   2. starts a private MariaDB server (binlogs on, like the platform's) and creates a tenant
#      with the real CA schema, rows, media files and configuration (ca-tenant-gen);
#   3. runs `conservator daemon` on a fast schedule: its first backup, a simulated day of use,
#      the next (incremental) backup; shows /healthz, /metrics and the catalog;
#   4. stops the daemon (SIGTERM), restores the tenant into a fresh database and media directory
#      and prints the proof: every table's CHECKSUM TABLE equal, every media file identical.
# Environment:
#   DEMO_DIR   work directory (default /var/tmp/conservator-demo; wiped at start)
#   DEMO_SIZE  tenant size (default 300MB: 20 % database, 80 % media; 1GB for a big one)
#   DEMO_PORT  the daemon's /healthz and /metrics port (default 9187)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${DEMO_DIR:-/var/tmp/conservator-demo}
SIZE=${DEMO_SIZE:-300MB}
PORT=${DEMO_PORT:-9187}
TENANT=ca-1a2b3c4d
DB=ca_1a2b3c4d
APP=tenant_1a2b3c4d
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/conservator/target}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- 1. what is missing
command -v cargo >/dev/null || die "cargo is missing: install Rust from https://rustup.rs"
if ! command -v python3 >/dev/null; then
    [[ $EUID -eq 0 ]] || die "python3 is missing: apt-get install python3"
    apt-get install -y -q python3 >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q python3 >/dev/null; }
fi
if ! command -v mariadbd >/dev/null && [[ ! -x /usr/sbin/mariadbd ]] || ! command -v mariadb-dump >/dev/null; then
    [[ $EUID -eq 0 ]] || die "MariaDB is missing: run as root, or apt-get install mariadb-server mariadb-client"
    say "installing MariaDB (apt-get install mariadb-server mariadb-client)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q mariadb-server mariadb-client >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q mariadb-server mariadb-client >/dev/null; }
fi
PATH=$PATH:/usr/sbin
[[ -d $ROOT/../shared/fixtures/collectiveaccess || -n ${CA_SCHEMA:-} ]] || die "the CA schema is missing: shared/fixtures/collectiveaccess beside the repository, or set CA_SCHEMA"

say "building conservator and ca-tenant-gen (target dir $CARGO_TARGET_DIR)"
(cd "$ROOT" && cargo build --locked -q -p conservator -p conservator-cagen)
BIN=$CARGO_TARGET_DIR/debug/conservator
GEN=$CARGO_TARGET_DIR/debug/ca-tenant-gen

# ---------------------------------------------------------------- 2. a MariaDB server and a tenant
MDB_PID=
DAEMON_PID=
cleanup() {
    [[ -n $DAEMON_PID ]] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    [[ -n $MDB_PID ]] && kill "$MDB_PID" 2>/dev/null && wait "$MDB_PID" 2>/dev/null
    true
}
trap cleanup EXIT
pkill -f "mariadbd --no-defaults --datadir=$DIR/mariadb/data" 2>/dev/null && sleep 2 || true
rm -rf "$DIR"
mkdir -p "$DIR/mariadb/binlog" "$DIR/mariadb/tmp" "$DIR/ca"
say "starting a private MariaDB server in $DIR/mariadb"
mariadb-install-db --no-defaults --datadir="$DIR/mariadb/data" --user=root \
    --auth-root-authentication-method=socket --skip-test-db >"$DIR/mariadb/install.log" 2>&1 \
    || die "mariadb-install-db failed: see $DIR/mariadb/install.log"
SOCK=$DIR/mariadb/sock
mariadbd --no-defaults --datadir="$DIR/mariadb/data" --socket="$SOCK" --skip-networking \
    --user=root --server-id=1 --log-bin="$DIR/mariadb/binlog/mysql-bin" --binlog-format=ROW \
    --gtid-strict-mode=1 --binlog-checksum=CRC32 --default-time-zone=+00:00 --tmpdir="$DIR/mariadb/tmp" \
    >"$DIR/mariadb/mariadbd.log" 2>&1 &
MDB_PID=$!
SQL=(mariadb --no-defaults --socket="$SOCK" -uroot -N -B)
for _ in $(seq 100); do "${SQL[@]}" -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
"${SQL[@]}" -e 'SELECT 1' >/dev/null || die "MariaDB did not start: see $DIR/mariadb/mariadbd.log"

say "creating tenant $TENANT ($SIZE): the CA schema, rows, media files and configuration"
"$GEN" create --socket "$SOCK" --database "$DB" --ca-root "$DIR/ca" --app-name "$APP" --size "$SIZE" >"$DIR/tenant.json"
python3 - "$DIR/tenant.json" <<'EOF' 2>/dev/null || cat "$DIR/tenant.json"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"  {r['tables']} tables, {r['rows']} rows, {r['objects']} objects, {r['users']} users; "
      f"{r['media_files']} media files ({r['media_bytes'] / 1e6:.0f} MB) in {r['media_root']}; {r['seconds']:.0f} s")
EOF

# ---------------------------------------------------------------- 3. the daemon
cat >"$DIR/conservator.toml" <<EOF
version = 1
[daemon]
state_dir = "$DIR/state"            # SQLite catalog, tenant keys, local repositories
listen = "127.0.0.1:$PORT"
max_concurrent_backups = 2
jitter_secs = 0
[defaults.retention]
keep_last = 5
keep_daily = 7
[[tenant]]
id = "$TENANT"
plan = "pro"
schedule = "*/20 * * * * *"         # every 20 s for the demo (production: "0 3 * * *")
media = "$DIR/ca/media/$APP"
extra_paths = ["$DIR/ca/setup.php", "$DIR/ca/app/conf/local"]
[tenant.database]
socket = "$SOCK"
user = "root"
schema = "$DB"
EOF
export CONSERVATOR_CONFIG=$DIR/conservator.toml
say "conservator config check"
"$BIN" config check
say "conservator daemon --config $CONSERVATOR_CONFIG (log: $DIR/daemon.log)"
CONSERVATOR_LOG=${CONSERVATOR_LOG:-info} "$BIN" daemon >"$DIR/daemon.log" 2>&1 &
DAEMON_PID=$!
# succeeded [SINCE]: how many backups succeeded (that started after SINCE, UTC seconds)
succeeded() {
    "$BIN" tenant runs "$TENANT" --json --limit 100 2>>"$DIR/runs.err" | python3 -c '
import json, sys
since = sys.argv[1] if len(sys.argv) > 1 else ""
try:
    print(sum(1 for r in json.load(sys.stdin)
              if r["kind"] == "backup" and r["status"] == "succeeded" and r["started_at"][:19] > since))
except Exception:
    print(0)' "${1:-}" || true
}
wait_backups() { # WANT [SINCE]
    local want=$1 since=${2:-} n
    for _ in $(seq 600); do
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$DIR/daemon.log" >&2; die "the daemon stopped"; }
        n=$(succeeded "$since")
        ((${n:-0} >= want)) && return 0
        sleep 1
    done
    cat "$DIR/daemon.log" >&2
    die "no backup #$want within 10 minutes"
}
wait_backups 1
echo "first scheduled backup done"
"$BIN" tenant runs "$TENANT" --limit 1

say "a day of use: ~1 % of rows changed, logins, 50 new uploads"
"$GEN" day --socket "$DIR/mariadb/sock" --database "$DB" --ca-root "$DIR/ca" --app-name "$APP" --size "$SIZE" --day 1 >/dev/null
DAY_DONE=$(date -u +%Y-%m-%dT%H:%M:%S)
wait_backups 1 "$DAY_DONE"   # a backup that started after the day's changes were all in
echo "next scheduled backup done (incremental)"
"$BIN" tenant runs "$TENANT" --limit 2
echo
echo "GET /healthz: $(curl -fsS "http://127.0.0.1:$PORT/healthz" 2>/dev/null || python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$PORT/healthz').read().decode().strip())")"
echo "GET /metrics (conservator_backup_*):"
python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$PORT/metrics').read().decode())" | grep '^conservator_backup_last' | sed 's/^/  /'

say "stopping the daemon (SIGTERM)"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || die "the daemon did not stop cleanly: see $DIR/daemon.log"
DAEMON_PID=
tail -n 2 "$DIR/daemon.log"

# ---------------------------------------------------------------- 4. restore and proof
say "conservator tenant snapshots $TENANT"
"$BIN" tenant snapshots "$TENANT"
say "conservator tenant restore $TENANT --snapshot latest --database ${DB}_restored --media-dir $DIR/restored/media"
"$BIN" tenant restore "$TENANT" --snapshot latest --database "${DB}_restored" --media-dir "$DIR/restored/media"

say "proof"
tables() { "${SQL[@]}" -e "SELECT table_name FROM information_schema.tables WHERE table_schema='$1' AND table_type='BASE TABLE' ORDER BY 1"; }
checksum() { "${SQL[@]}" -e "CHECKSUM TABLE $(tables "$1" | sed "s/.*/\`$1\`.\`&\`/" | paste -sd,)" | sed "s/^$1\.//"; }
checksum "$DB" >"$DIR/checksums.live"
checksum "${DB}_restored" >"$DIR/checksums.restored"
n=$(wc -l <"$DIR/checksums.live")
if cmp -s "$DIR/checksums.live" "$DIR/checksums.restored"; then
    echo "database: CHECKSUM TABLE equal for all $n tables of $DB and ${DB}_restored"
else
    diff "$DIR/checksums.live" "$DIR/checksums.restored" | head
    die "database: checksums differ"
fi
files=$(find "$DIR/ca/media/$APP" -type f | wc -l)
if diff -r --no-dereference "$DIR/ca/media/$APP" "$DIR/restored/media" >/dev/null; then
    echo "media:    all $files files identical ($(du -sh "$DIR/restored/media" | cut -f1)) in $DIR/restored/media"
else
    die "media: the restored files differ (diff -r $DIR/ca/media/$APP $DIR/restored/media)"
fi

say "done. Where to look next:"
cat <<EOF
  export CONSERVATOR_CONFIG=$DIR/conservator.toml
  $BIN tenant list                  # tenants and their last backup
  $BIN tenant runs                  # the catalog ($DIR/state/catalog.db)
  $BIN tenant snapshots $TENANT
  $BIN daemon                       # run it again; /metrics on 127.0.0.1:$PORT
  CONSERVATOR_REPO=$DIR/state/repositories/$TENANT CONSERVATOR_KEY_FILE=$DIR/state/keys/$TENANT.key \\
      $BIN repo check --read-data   # the engine underneath
  The MariaDB server stops with this script; its data stays in $DIR/mariadb.
EOF
