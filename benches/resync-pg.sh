#!/usr/bin/env bash
# Benchmark: an unchanged re-sync of N contracts on a freshly loaded PostgreSQL store (the
# table has just been filled, so it has no statistics yet), for each build given, in
# interleaved rounds; then the same on SQLite for the first build. Each run: a fresh
# database, `cierre sync` (all new, not timed), then the timed `cierre sync` (all unchanged).
# Usage: benches/resync-pg.sh [ROWS] [BIN…]   (default 200000 and target/release/cierre)
# PostgreSQL at $BENCH_PG (default postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-200000}
shift || true
bins=("$@")
if ((${#bins[@]} == 0)); then
  cargo build --release --quiet
  bins=("$PWD/target/release/cierre")
fi
pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
work=$(mktemp -d)
trap 'rm -rf "$work"; psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS cierre_resync_bench" >/dev/null 2>&1 || true' EXIT
python3 benches/contracts.py "$rows" "$work/contracts.jsonl"
sync
# The built-in defaults, which every build reads alike, with the file source.
: >"$work/empty.toml"
export CIERRE__SOURCE__KIND=file CIERRE__SOURCE__CONTRACTS_PATH=$work/contracts.jsonl
export CIERRE_LOG=warn
source benches/measure.sh
for round in 1 2; do
  for bin in "${bins[@]}"; do
    psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS cierre_resync_bench" >/dev/null
    psql "$pg/postgres" -qc "CREATE DATABASE cierre_resync_bench" >/dev/null
    export CIERRE__STORE__URL=$pg/cierre_resync_bench
    "$bin" --config "$work/empty.toml" sync >/dev/null
    measure "pg r$round $(basename "$(dirname "$(dirname "$bin")")")" "$bin" --config "$work/empty.toml" sync
  done
done
rm -f "$work/bench.db"*
export CIERRE__STORE__URL=sqlite://$work/bench.db
"${bins[0]}" --config "$work/empty.toml" sync >/dev/null
measure "sqlite $(basename "$(dirname "$(dirname "${bins[0]}")")")" "${bins[0]}" --config "$work/empty.toml" sync
