#!/usr/bin/env bash
# conservator vs restic vs borg on one deterministic corpus, local repositories.
# See bench/README.md. Environment:
#   BENCH_SCALE      corpus scale (default 1.0 = ~1.55 GB; 0.05 = ~78 MB smoke run)
#   BENCH_TOOLS      tools to measure (default "conservator restic borg")
#   BENCH_DIR        work dir: corpus cache, repositories, restores (default /var/tmp/conservator-bench)
#   BENCH_SEED       corpus seed (default 20240603)
#   BENCH_OUT        where results.md / results.json / logs/ go (default bench/out)
#   BENCH_ROUNDS     rounds of the whole sequence (default 3); figures are medians over rounds
#   BENCH_STRICT=1   exit 3 when a conservator-vs-restic target FAILs
#   BENCH_KEEP_RESTORES=1  keep the restored trees (default: deleted once verified)
#   CONSERVATOR_BIN  conservator binary (default: cargo build --release -p conservator)
#   CARGO_TARGET_DIR used for that build (default $HOME/.cache/conservator/target)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/conservator-bench}
BENCH_SCALE=${BENCH_SCALE:-1.0}
BENCH_SEED=${BENCH_SEED:-20240603}
BENCH_TOOLS=${BENCH_TOOLS:-conservator restic borg}
OUT=${BENCH_OUT:-$HERE/out}
PY=${PYTHON:-python3}
CORPUS_PY=$HERE/corpus.py

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ arguments
BENCH_SCALE=$("$PY" -c 'import sys; s = float(sys.argv[1]); assert 0 < s <= 100; print(s)' "$BENCH_SCALE") \
    || die "BENCH_SCALE must be a number in (0, 100]"
[[ $BENCH_SEED =~ ^[0-9]+$ ]] || die "BENCH_SEED must be an integer"
read -r -a TOOLS <<<"$BENCH_TOOLS"
((${#TOOLS[@]})) || die "BENCH_TOOLS is empty"
for t in "${TOOLS[@]}"; do
    case $t in conservator | restic | borg) ;; *) die "unknown tool '$t' in BENCH_TOOLS" ;; esac
done
has_tool() { [[ " ${TOOLS[*]} " == *" $1 "* ]]; }

# ------------------------------------------------------------------ dependencies
need=()
[[ -x /usr/bin/time ]] || need+=(time)
has_tool restic && ! command -v restic >/dev/null && need+=(restic)
has_tool borg && ! command -v borg >/dev/null && need+=(borgbackup)
if ((${#need[@]})); then
    [[ $EUID -eq 0 ]] || die "missing ${need[*]}; run as root or install them"
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q "${need[@]}" >&2; then
        apt-get update -q >&2
        apt-get install -y -q "${need[@]}" >&2
    fi
fi

if has_tool conservator; then
    if [[ -z ${CONSERVATOR_BIN:-} ]]; then
        export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/conservator/target}
        log "building conservator (cargo build --release -p conservator, target $CARGO_TARGET_DIR)"
        (cd "$ROOT" && cargo build --release -p conservator) >&2
        CONSERVATOR_BIN=$CARGO_TARGET_DIR/release/conservator
    fi
    [[ -x $CONSERVATOR_BIN ]] || die "CONSERVATOR_BIN '$CONSERVATOR_BIN' is not executable"
    CONSERVATOR_BIN=$(realpath "$CONSERVATOR_BIN")
fi

# ------------------------------------------------------------------ corpus
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd -P)     # tools store absolute paths: no symlinks in them
CDIR=$BENCH_DIR/corpus-scale$BENCH_SCALE-seed$BENCH_SEED
DATA=$CDIR/data
RUN=$BENCH_DIR/run
LOGS=$OUT/logs

CHANGED=0
on_exit() {
    local rc=$?
    if ((CHANGED)); then
        log "reverting corpus to day 1"
        "$PY" "$CORPUS_PY" revert --dir "$CDIR" || log "WARNING: revert failed; the next run regenerates"
    fi
    ((rc == 0)) || log "FAILED (exit $rc); logs in $LOGS"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

rm -rf "$RUN" "$LOGS"
mkdir -p "$RUN" "$LOGS"
log "corpus: $DATA (scale $BENCH_SCALE, seed $BENCH_SEED)"
t0=$(date +%s.%N)
"$PY" "$CORPUS_PY" ensure --dir "$CDIR" --scale "$BENCH_SCALE" --seed "$BENCH_SEED" >"$RUN/corpus-day1.json"
log "corpus ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"

# ------------------------------------------------------------------ measuring
DROP=no
drop_caches() {
    sync
    if [[ -w /proc/sys/vm/drop_caches ]] && { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
        DROP=yes
    fi
}

# timed TOOL STEP [--cwd DIR] -- CMD...   (runs CMD, appends a line to steps.tsv)
timed() {
    local tool=$1 step=$2 cwd=.
    shift 2
    if [[ $1 == --cwd ]]; then cwd=$2; shift 2; fi
    [[ $1 == -- ]] && shift
    local logf=$LOGS/$tool-$step.log tf=$RUN/time.$tool.$step rc=0 t0 t1 s1
    drop_caches
    log "$tool: $step"
    printf '$ %s\n' "$*" >"$logf"
    t0=$(date +%s.%N)
    (cd "$cwd" && exec /usr/bin/time -f '%M %U %S %e' -o "$tf" "$@") >>"$logf" 2>&1 </dev/null || rc=$?
    t1=$(date +%s.%N)
    if ((rc != 0)); then
        tail -n 40 "$logf" >&2
        die "$tool $step failed with exit status $rc (log: $logf)"
    fi
    sync
    s1=$(date +%s.%N)
    local rss user sys
    read -r rss user sys _ < <(tail -n 1 "$tf")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')" "$rss" "$user" "$sys" \
        "$(awk -v a="$t1" -v b="$s1" 'BEGIN{printf "%.3f", b-a}')" >>"$RUN/steps.tsv"
    log "$tool: $step took $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')s, max RSS $((rss / 1024)) MiB"
}

repo_size() { # tool when
    printf '%s\t%s\t%s\n' "$1" "$2" "$(du -sb "$RUN/repo-$1" | cut -f1)" >>"$RUN/sizes.tsv"
}

# Each tool gets the same secrets-by-environment setup and a private, empty cache/config home.
export RESTIC_PASSWORD=bench-restic-password
export BORG_PASSPHRASE=bench-borg-passphrase BORG_DISPLAY_PASSPHRASE=no
export BORG_BASE_DIR=$RUN/home XDG_CACHE_HOME=$RUN/home/.cache XDG_CONFIG_HOME=$RUN/home/.config
export CONSERVATOR_PASSWORD=bench-conservator-password
unset RESTIC_REPOSITORY RESTIC_PASSWORD_FILE BORG_REPO CONSERVATOR_PASSWORD_FILE
mkdir -p "$XDG_CACHE_HOME" "$XDG_CONFIG_HOME"

do_init() {
    local repo=$RUN/repo-$1
    case $1 in
    conservator) timed conservator init -- "$CONSERVATOR_BIN" repo init --repo "$repo" ;;
    restic) timed restic init -- restic --repo "$repo" init ;;
    borg) timed borg init -- borg init --encryption repokey-blake2 "$repo" ;;
    esac
}

do_backup() { # tool step archive-name
    local repo=$RUN/repo-$1
    case $1 in
    conservator) timed conservator "$2" -- "$CONSERVATOR_BIN" repo backup --repo "$repo" --json --no-progress "$DATA" ;;
    restic) timed restic "$2" -- restic --repo "$repo" backup "$DATA" ;;
    borg) timed borg "$2" -- borg create --compression auto,zstd,3 "$repo::$3" "$DATA" ;;
    esac
}

do_restore() {
    local repo=$RUN/repo-$1 target=$RUN/restore-$1
    rm -rf "$target"
    mkdir -p "$target"
    case $1 in
    conservator) timed conservator restore -- "$CONSERVATOR_BIN" repo restore --repo "$repo" latest --target "$target" --no-progress ;;
    restic) timed restic restore -- restic --repo "$repo" restore latest --target "$target" ;;
    borg) timed borg restore --cwd "$target" -- borg extract "$repo::day2" ;; # borg strips the leading /
    esac
    # all three restore absolute paths below the target: TARGET/<absolute path of DATA>
    local root=$target${DATA}
    if [[ ! -d $root ]]; then
        find "$target" -maxdepth 8 -type d | head -n 20 >&2
        die "$1: restored tree not found at $root"
    fi
    log "$1: verifying restore against the day-2 manifest"
    "$PY" "$CORPUS_PY" verify --manifest "$CDIR/manifest-day2.json" --root "$root" ||
        die "$1: RESTORE DOES NOT MATCH THE CORPUS"
    [[ ${BENCH_KEEP_RESTORES:-0} == 1 ]] || rm -rf "$target"
}

tool_info() { # untimed extra information for the logs; never fatal
    local repo=$RUN/repo-$1
    case $1 in
    conservator)
        "$CONSERVATOR_BIN" repo snapshots --repo "$repo" || true
        "$CONSERVATOR_BIN" repo stats --repo "$repo" --json || true ;;
    restic)
        restic --repo "$repo" snapshots || true
        restic --repo "$repo" stats --mode raw-data || true ;;
    borg) borg info "$repo" || true ;;
    esac
}

# ------------------------------------------------------------------ metadata
{
    printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'scale\t%s\nseed\t%s\ntools\t%s\n' "$BENCH_SCALE" "$BENCH_SEED" "${TOOLS[*]}"
    printf 'corpus_dir\t%s\n' "$DATA"
    printf 'cpu\t%s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    printf 'cores\t%s\n' "$(nproc)"
    printf 'mem\t%s\n' "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    printf 'kernel\t%s\n' "$(uname -r)"
    printf 'git_commit\t%s\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
    has_tool restic && printf 'version_restic\t%s\n' "$(restic version | head -n 1)"
    has_tool borg && printf 'version_borg\t%s\n' "$(borg --version | head -n 1)"
    has_tool conservator && printf 'version_conservator\t%s\n' \
        "$("$CONSERVATOR_BIN" --version 2>/dev/null | head -n 1 || echo unknown)"
    printf 'settings_restic\t%s\n' "repository v2, compression auto (defaults), AES-256 + Poly1305"
    printf 'settings_borg\t%s\n' "repokey-blake2, --compression auto,zstd,3"
    printf 'settings_conservator\t%s\n' "defaults"
} >"$RUN/meta.tsv"

# ------------------------------------------------------------------ the benchmark
ROUNDS=${BENCH_ROUNDS:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
log "tools: ${TOOLS[*]}; $ROUNDS round(s); work dir $RUN"
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round of $ROUNDS"
    for t in "${TOOLS[@]}"; do
        rm -rf "$RUN/repo-$t"
        [[ $t == borg ]] && rm -rf "$RUN/home/.cache/borg" "$RUN/home/.config/borg/security"
        do_init "$t"
        do_backup "$t" initial day1
        repo_size "$t" initial
    done

    log "applying the day-2 change"
    CHANGED=1
    "$PY" "$CORPUS_PY" change --dir "$CDIR" >"$RUN/corpus-day2.json"

    for t in "${TOOLS[@]}"; do
        do_backup "$t" incremental day2
        repo_size "$t" final
    done
    for t in "${TOOLS[@]}"; do
        do_restore "$t"
    done
    if ((round == ROUNDS)); then
        for t in "${TOOLS[@]}"; do
            tool_info "$t" >"$LOGS/$t-info.log" 2>&1
        done
    fi
    "$PY" "$CORPUS_PY" revert --dir "$CDIR"
    CHANGED=0
done
printf 'drop_caches\t%s\n' "$DROP" >>"$RUN/meta.tsv"
cp "$RUN"/steps.tsv "$RUN"/sizes.tsv "$RUN"/meta.tsv "$RUN"/corpus-day*.json "$LOGS/"

strict=()
[[ ${BENCH_STRICT:-0} == 1 ]] && strict=(--strict)
"$PY" "$HERE/report.py" --run "$RUN" --out "$OUT" "${strict[@]}"
log "results: $OUT/results.md, $OUT/results.json (repositories kept in $RUN until the next run)"
