#!/usr/bin/env bash
# Benchmark: what SQLite alone needs to write N contract rows as the sync stores them, the
# floor under `cierre sync`. Syncs a JSON Lines file of N contracts shaped like the real ones
# (as sync-file.sh does), then copies the stored rows into a fresh, migrated database with
# `INSERT … SELECT`: no JSON, no hashing, no compression, no binding; the same columns,
# indexes and raw records, in 100,000-row transactions with the bulk writer's settings (WAL,
# synchronous NORMAL, 32 MB page cache, a checkpoint every 4,096 pages). Prints the copy's
# seconds, rows/s and peak RSS. Needs the sqlite3 command (Debian package sqlite3).
# Usage: benches/sqlite-floor.sh [ROWS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 benches/contracts.py "$rows" "$work/contracts.jsonl"
bin=$PWD/target/release/cierre
export CIERRE__SOURCE__CONTRACTS_PATH=$work/contracts.jsonl CIERRE__STORE__URL=sqlite://$work/synced.db
export CIERRE__EMAIL__TEMPLATES_DIR=$PWD/templates CIERRE_LOG=warn
"$bin" --config daemon.toml sync >/dev/null
CIERRE__STORE__URL=sqlite://$work/copy.db "$bin" --config daemon.toml migrate >/dev/null
rm -f "$work/contracts.jsonl"
{
  echo "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768;"
  echo "PRAGMA wal_autocheckpoint = 4096; PRAGMA journal_size_limit = 67108864;"
  echo "PRAGMA foreign_keys = ON; ATTACH '$work/synced.db' AS synced;"
  for ((from = 0; from < rows; from += 100000)); do
    echo "BEGIN IMMEDIATE; INSERT INTO main.contracts SELECT * FROM synced.contracts"
    echo "  WHERE rowid > $from AND rowid <= $((from + 100000)); COMMIT;"
  done
} >"$work/copy.sql"
sync
source benches/measure.sh
measure "SQLite copy (floor)" sqlite3 "$work/copy.db" <"$work/copy.sql"
