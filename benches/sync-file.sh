#!/usr/bin/env bash
# Benchmark: `cierre sync` from a JSON Lines file of N contracts shaped like the real ones
# (the 1,000-row sample repeated with distinct ids), then a second sync of the same file
# (all unchanged), then `cierre evaluate`. Prints seconds, rows/s and peak RSS of each.
# Usage: benches/sync-file.sh [ROWS]   (default 100000)
# The store is a fresh SQLite file; set BENCH_STORE_URL=postgres://…/emptydb to measure
# PostgreSQL instead (the database must exist and be empty).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-100000}
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 benches/contracts.py "$rows" "$work/contracts.jsonl"
# The file just written is still being flushed to disk: let that finish before timing.
sync
bin=$PWD/target/release/cierre
export CIERRE__SOURCE__CONTRACTS_PATH=$work/contracts.jsonl
export CIERRE__STORE__URL=${BENCH_STORE_URL:-sqlite://$work/bench.db}
export CIERRE__EMAIL__TEMPLATES_DIR=$PWD/templates CIERRE_LOG=warn
source benches/measure.sh
measure "sync (all new)" "$bin" --config daemon.toml sync
measure "sync (all unchanged)" "$bin" --config daemon.toml sync
measure "evaluate" "$bin" --config daemon.toml evaluate --as-of 2026-02-16 --format jsonl
