#!/usr/bin/env bash
# Benchmark: the next day's evaluation, incremental against full, over a SQLite store of N
# contracts (benches/store.py). The store is evaluated once as of 2026-02-16 (full: the
# first), then copied; each round evaluates a fresh copy as of 2026-02-17
#   - with no contract changed, incrementally and with --full;
#   - with 1 % of the contracts changed (state, last update, row hash, so the store's
#     triggers mark them), incrementally and with --full;
#   - with OLD=path/to/cierre, that earlier build's (always full) evaluation of the same
#     next day on its own store, built and evaluated the same way.
# Runs are interleaved, round after round. Each line gives the command's time (the listing
# of every open finding as JSON lines included), peak RSS and peak private memory, then the
# evaluation's own seconds as the command reports them.
# Usage: [OLD=path] [BIN=path] [ROUNDS=2] benches/incremental.sh [CONTRACTS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
rounds=${ROUNDS:-2}
[[ -n ${BIN:-} ]] || cargo build --release --quiet
bin=${BIN:-$PWD/target/release/cierre}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CIERRE__SOURCE__KIND=file CIERRE__SOURCE__CONTRACTS_PATH=$work/none.jsonl
export CIERRE__EMAIL__TEMPLATES_DIR=$PWD/templates CIERRE_LOG=warn
source benches/measure.sh

checkpoint() {
  python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("PRAGMA wal_checkpoint(TRUNCATE)"); c.close()' "$1"
}

# A store of $rows contracts migrated and evaluated once by $2, kept as $1.
prepare() {
  local snap=$1 build=$2
  CIERRE__STORE__URL=sqlite://$work/run.db "$build" --config daemon.toml migrate >/dev/null
  python3 benches/store.py "$rows" "$work/run.db"
  CIERRE__STORE__URL=sqlite://$work/run.db "$build" --config daemon.toml evaluate \
    --as-of 2026-02-16 --format jsonl >/dev/null 2>"$work/first"
  checkpoint "$work/run.db"
  mv "$work/run.db" "$snap"
  rm -f "$work/run.db-wal" "$work/run.db-shm"
  sed -n 's/^  (\(.*\))$/first evaluation: \1/p' "$work/first"
}

# 1 % of the contracts changed the next morning, as a sync would leave them.
change_one_percent() {
  python3 - "$1" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
n = c.execute("""UPDATE contracts SET
    estado_contrato = CASE WHEN estado_contrato = 'terminado' THEN 'Cerrado' ELSE 'terminado' END,
    ultima_actualizacion = '2026-02-17', content_hash = content_hash || '+',
    last_changed = '2026-02-17T06:00:00Z' WHERE rowid % 100 = 7""").rowcount
c.commit()
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
print(f"{n} contracts changed")
PY
}

# `evaluate LABEL SNAPSHOT BUILD ARGS…`: evaluates a fresh copy of SNAPSHOT as of 2026-02-17.
evaluate() {
  local label=$1 snap=$2 build=$3; shift 3
  cp "$snap" "$work/run.db"
  rm -f "$work/run.db-wal" "$work/run.db-shm"
  sync
  CIERRE__STORE__URL=sqlite://$work/run.db measure "$label" "$build" --config daemon.toml \
    evaluate --as-of 2026-02-17 --format jsonl "$@"
  sed -n 's/^  (\(.*\))$/    \1/p' "$work/err"
}

start=$(date +%s)
prepare "$work/new.db" "$bin"
cp "$work/new.db" "$work/changed.db"
change_one_percent "$work/changed.db"
if [[ -n ${OLD:-} ]]; then
  prepare "$work/old.db" "$OLD"
  cp "$work/old.db" "$work/old-changed.db"
  change_one_percent "$work/old-changed.db"
fi
echo "stores of $rows contracts ready in $(( $(date +%s) - start )) s"
for round in $(seq "$rounds"); do
  echo "round $round"
  evaluate "none changed, incr." "$work/new.db" "$bin"
  evaluate "none changed, --full" "$work/new.db" "$bin" --full
  [[ -n ${OLD:-} ]] && evaluate "none changed, old" "$work/old.db" "$OLD"
  evaluate "1 % changed, incr." "$work/changed.db" "$bin"
  evaluate "1 % changed, --full" "$work/changed.db" "$bin" --full
  [[ -n ${OLD:-} ]] && evaluate "1 % changed, old" "$work/old-changed.db" "$OLD"
done
