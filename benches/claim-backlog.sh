#!/usr/bin/env bash
# Benchmark: a drain of the outbox when a long queue waits behind one target. N webhook
# items are queued for one endpoint whose first item is being sent (its lease still held),
# and SMALL (100) items for as many other endpoints, no longer configured (each is dead-lettered at
# once, so the time is the claims'). Prints the time `cierre deliver` takes to claim and
# settle the others, on PostgreSQL.
# Usage: benches/claim-backlog.sh [N] [BIN]   (default 100000 and target/release/cierre)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
small=${SMALL:-100}
bin=${2:-}
if [[ -z $bin ]]; then
  cargo build --release --quiet
  bin=$PWD/target/release/cierre
fi
pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
db=cierre_claim_backlog
work=$(mktemp -d)
trap 'rm -rf "$work"; psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>/dev/null
printf '[store]\nurl = "%s"\n[email]\nfrom = "cierre <cierre@example.gov.co>"\ntemplates_dir = "%s"\n' \
  "$pg/$db" "$PWD/templates" >"$work/daemon.toml"
"$bin" --config "$work/daemon.toml" migrate >/dev/null
psql "$pg/$db" -q <<SQL
INSERT INTO outbox (idempotency_key, channel, target, payload, status, attempts, next_attempt_at, created_at)
SELECT 'k' || i, 'webhook',
       CASE WHEN i <= $n THEN 'http://127.0.0.1:9/big' ELSE 'http://127.0.0.1:9/small' || i END,
       '{}', 'pending', 0, now(), now()
FROM generate_series(1, $n + $small) AS i;
UPDATE outbox SET status = 'sending', claimed_until = now() + interval '1 hour' WHERE id = 1;
ANALYZE outbox;
SQL
start=$(date +%s.%N)
out=$(CIERRE_LOG=off "$bin" --config "$work/daemon.toml" deliver)
end=$(date +%s.%N)
printf "%s items behind one target, %s others: %s in %.2f s\n" "$n" "$small" "$out" "$(echo "$end - $start" | bc)"
