#!/usr/bin/env bash
# Benchmark: `cierre evaluate` over a SQLite store of N contracts (the real 1,000-row sample
# repeated with distinct ids and processes), 3 documents per contract (two on the contract,
# one on its process, names from the real FEAB list) and one guarantee per two contracts.
# Runs the first evaluation (every finding opened), the same date again (nothing changes)
# and the next business day (every finding's days left moves). Prints seconds, contracts/s
# and peak RSS of each.
# With FLOOR=1 (needs the sqlite3 command), it then times SQLite alone writing what the first
# evaluation wrote, the findings and their history events, into a copy of the store as it
# was before (INSERT ... SELECT in one transaction, the bulk connection's settings): no rules,
# no reading of contracts, no output. A first evaluation cannot take less.
# Usage: [FLOOR=1] [BIN=path/to/cierre] benches/evaluate.sh [CONTRACTS]   (default 100000;
# BIN: time that build instead of building this checkout, to compare builds interleaved)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-100000}
[[ -n ${BIN:-} ]] || cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=${BIN:-$PWD/target/release/cierre}
export CIERRE__STORE__URL=sqlite://$work/bench.db
export CIERRE__SOURCE__KIND=file CIERRE__SOURCE__CONTRACTS_PATH=$work/none.jsonl
export CIERRE__EMAIL__TEMPLATES_DIR=$PWD/templates CIERRE_LOG=warn
"$bin" --config daemon.toml migrate >/dev/null
start=$(date +%s)
python3 benches/store.py "$rows" "$work/bench.db"
echo "store of $rows contracts, $((rows * 3)) documents, $((rows / 2)) guarantees built in $(( $(date +%s) - start )) s"
# Kept for the floor below: the store before any evaluation.
[[ ${FLOOR:-} == 1 ]] && cp "$work/bench.db" "$work/before.db"
# The store just written is still being flushed to disk: let that finish before timing.
sync
source benches/measure.sh
measure "evaluate (first)" "$bin" --config daemon.toml evaluate --as-of 2026-02-16 --format jsonl
measure "evaluate (same day)" "$bin" --config daemon.toml evaluate --as-of 2026-02-16 --format jsonl
measure "evaluate (next day)" "$bin" --config daemon.toml evaluate --as-of 2026-02-17 --format jsonl
"$bin" --config daemon.toml evaluate --as-of 2026-02-17 --format jsonl 2>&1 >/dev/null | sed -n '2,12p'
if [[ ${FLOOR:-} == 1 ]]; then
  sync
  measure "findings write (floor)" sqlite3 "$work/before.db" "PRAGMA journal_mode = WAL; \
    PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -32768; \
    PRAGMA wal_autocheckpoint = 4096; PRAGMA mmap_size = 2147418112; \
    ATTACH '$work/bench.db' AS evaluated; BEGIN; \
    INSERT INTO main.findings SELECT * FROM evaluated.findings \
      WHERE opened_on = '2026-02-16' ORDER BY id; \
    INSERT INTO main.finding_events SELECT * FROM evaluated.finding_events \
      WHERE on_date = '2026-02-16' AND finding_id IN (SELECT id FROM main.findings) ORDER BY id; \
    COMMIT;"
fi
