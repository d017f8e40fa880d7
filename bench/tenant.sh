#!/usr/bin/env bash
# A whole Collective Access tenant backed up by conservator against the usual pipeline,
# `mariadb-dump | zstd` plus `restic backup` of the media and the compressed dump, in one run on
# one private MariaDB server and one tenant made by ca-tenant-gen. See bench/README.md.
# Environment:
#   BENCH_TENANT_SIZE  tenant size (default 1GB: 20 % database, 80 % media)
#   BENCH_DIR          work dir (default /var/tmp/conservator-bench); the tenant lives in $BENCH_DIR/tenant
#   BENCH_OUT          where tenant-results.md / tenant-results.json / logs go (default bench/out)
#   CONSERVATOR_BIN    conservator binary (default: cargo build --release)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SIZE=${BENCH_TENANT_SIZE:-1GB}
BENCH_DIR=${BENCH_DIR:-/var/tmp/conservator-bench}
OUT=${BENCH_OUT:-$HERE/out}
W=$BENCH_DIR/tenant
LOGS=$OUT/logs
TENANT=ca-1a2b3c4d DB=ca_1a2b3c4d APP=tenant_1a2b3c4d
log() { printf '[bench-tenant %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need=()
[[ -x /usr/bin/time ]] || need+=(time)
command -v restic >/dev/null || need+=(restic)
command -v zstd >/dev/null || need+=(zstd)
command -v mariadb-dump >/dev/null || need+=(mariadb-server mariadb-client)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need[@]}" >&2 || { apt-get update -q >&2 && apt-get install -y -q "${need[@]}" >&2; }
fi
PATH=$PATH:/usr/sbin
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/conservator/target}
log "building (cargo build --release -p conservator -p conservator-cagen)"
(cd "$ROOT" && cargo build --release --locked -q -p conservator -p conservator-cagen) >&2
BIN=${CONSERVATOR_BIN:-$CARGO_TARGET_DIR/release/conservator}
GEN=$CARGO_TARGET_DIR/release/ca-tenant-gen

MDB_PID=
trap '[[ -n $MDB_PID ]] && kill $MDB_PID 2>/dev/null; wait 2>/dev/null; true' EXIT
pkill -f "mariadbd --no-defaults --datadir=$W/mariadb/data" 2>/dev/null && sleep 2 || true
rm -rf "$W" "$LOGS/tenant"
mkdir -p "$W/mariadb/binlog" "$W/mariadb/tmp" "$W/ca" "$LOGS/tenant"
mariadb-install-db --no-defaults --datadir="$W/mariadb/data" --user=root --auth-root-authentication-method=socket \
    --skip-test-db >"$LOGS/tenant/install.log" 2>&1
SOCK=$W/mariadb/sock
mariadbd --no-defaults --datadir="$W/mariadb/data" --socket="$SOCK" --skip-networking --user=root --server-id=1 \
    --log-bin="$W/mariadb/binlog/mysql-bin" --binlog-format=ROW --gtid-strict-mode=1 --default-time-zone=+00:00 \
    --tmpdir="$W/mariadb/tmp" --innodb-buffer-pool-size=1G >"$LOGS/tenant/mariadbd.log" 2>&1 &
MDB_PID=$!
for _ in $(seq 100); do mariadb --no-defaults --socket="$SOCK" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done

log "creating a $SIZE tenant (ca-tenant-gen)"
"$GEN" create --socket "$SOCK" --database "$DB" --ca-root "$W/ca" --app-name "$APP" --size "$SIZE" >"$W/create.json"
MEDIA=$W/ca/media/$APP

cat >"$W/conservator.toml" <<EOF
version = 1
[daemon]
state_dir = "$W/state"
[[tenant]]
id = "$TENANT"
plan = "museum"
media = "$MEDIA"
[tenant.database]
socket = "$SOCK"
user = "root"
schema = "$DB"
EOF
export CONSERVATOR_CONFIG=$W/conservator.toml
export RESTIC_REPOSITORY=$W/restic RESTIC_PASSWORD=bench-pass RESTIC_CACHE_DIR=$W/restic-cache XDG_CACHE_HOME=$W/xdg
restic init >/dev/null

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
# measure NAME CMD...: wall seconds and peak RSS (KiB) into $W/m.NAME
measure() {
    local name=$1; shift
    drop_caches
    /usr/bin/time -f '%e %M' -o "$W/m.$name" "$@" >"$LOGS/tenant/$name.out" 2>"$LOGS/tenant/$name.err" \
        || { cat "$LOGS/tenant/$name.err" >&2; die "$name failed"; }
    log "$name: $(cut -d' ' -f1 "$W/m.$name") s, peak RSS $(($(cut -d' ' -f2 "$W/m.$name") / 1024)) MiB"
}
DUMP="mariadb-dump --no-defaults --socket=$SOCK -uroot --single-transaction --master-data=2 --gtid --routines --events --triggers --hex-blob $DB"
PIPE_DUMP="$DUMP | zstd -q -3 -T0 -o $W/dump.sql.zst -f"

run_round() {
    local r=$1
    measure "conservator-$r" "$BIN" tenant backup "$TENANT" --json --no-progress
    measure "dump-zstd-$r" bash -o pipefail -c "$PIPE_DUMP"
    measure "restic-$r" restic backup --quiet --json "$MEDIA" "$W/dump.sql.zst"
}
log "round 1: initial backups"
run_round 1
log "a day of use (ca-tenant-gen day 1: ~1 % of rows, 50 uploads)"
"$GEN" day --socket "$SOCK" --database "$DB" --ca-root "$W/ca" --app-name "$APP" --size "$SIZE" --day 1 >"$W/day.json"
log "round 2: daily backups"
run_round 2

python3 - "$W" "$OUT" "$SIZE" <<'EOF'
import json, sys, os
w, out, size = sys.argv[1:]
m = {}
for f in os.listdir(w):
    if f.startswith("m."):
        e, rss = open(os.path.join(w, f)).read().split()
        m[f[2:]] = {"seconds": float(e), "peak_rss_mib": int(rss) / 1024}
create = json.load(open(os.path.join(w, "create.json")))
day = json.load(open(os.path.join(w, "day.json")))
cons = [json.loads(open(os.path.join(out, "logs/tenant", f"conservator-{r}.out")).read()) for r in (1, 2)]
rows = []
res = {"size": size, "tenant": {"database_bytes": create["database_bytes"], "media_bytes": create["media_bytes"],
       "media_files": create["media_files"], "day_rows_updated": day["rows_updated"], "day_media_files": day["media_files"],
       "day_media_bytes": day["media_bytes"]}, "steps": m, "conservator": cons}
for r in (1, 2):
    c = m[f"conservator-{r}"]["seconds"]
    d = m[f"dump-zstd-{r}"]["seconds"]
    rs = m[f"restic-{r}"]["seconds"]
    res[f"round{r}"] = {"conservator_s": c, "pipeline_s": d + rs, "dump_zstd_s": d, "restic_s": rs,
                        "speedup_vs_pipeline": (d + rs) / c, "speedup_vs_restic_step": rs / c}
r1, r2 = res["round1"], res["round2"]
targets = {
    "initial: conservator wall time <= pipeline's": r1["conservator_s"] <= r1["pipeline_s"],
    "daily: conservator >= 3x faster than the pipeline (dump|zstd + restic)": r2["speedup_vs_pipeline"] >= 3,
    "daily: conservator >= 3x faster than the restic step alone": r2["speedup_vs_restic_step"] >= 3,
}
res["targets"] = targets
os.makedirs(out, exist_ok=True)
json.dump(res, open(os.path.join(out, "tenant-results.json"), "w"), indent=2)
t = res["tenant"]
lines = [f"# conservator vs mariadb-dump | zstd + restic: one {size} tenant",
         "",
         f"Tenant: database {t['database_bytes']/1e6:.0f} MB (information_schema), media {t['media_bytes']/1e6:.0f} MB in {t['media_files']} files; "
         f"the day: {t['day_rows_updated']} rows updated, {t['day_media_files']} new media files ({t['day_media_bytes']/1e6:.1f} MB).",
         "",
         "| backup | conservator (s) | mariadb-dump \\| zstd (s) | restic backup (s) | pipeline total (s) | pipeline / conservator | conservator peak RSS (MiB) | restic peak RSS (MiB) |",
         "|---|---:|---:|---:|---:|---:|---:|---:|"]
for r, name in ((1, "initial"), (2, "daily")):
    x = res[f"round{r}"]
    lines.append(f"| {name} | {x['conservator_s']:.1f} | {x['dump_zstd_s']:.1f} | {x['restic_s']:.1f} | {x['pipeline_s']:.1f} | "
                 f"{x['speedup_vs_pipeline']:.2f}x | {m[f'conservator-{r}']['peak_rss_mib']:.0f} | {m[f'restic-{r}']['peak_rss_mib']:.0f} |")
lines.append("")
for k, v in targets.items():
    lines.append(f"- {'PASS' if v else 'FAIL'}: {k}")
lines.append("")
lines.append(f"conservator stored {cons[0]['bytes_stored']/1e6:.1f} MB initially and {cons[1]['bytes_stored']/1e6:.2f} MB daily.")
open(os.path.join(out, "tenant-results.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
