#!/usr/bin/env bash
# Measurement: two `cierre deliver` processes on one PostgreSQL store, a relay taking 3 s
# per message and a 5 s lease, the second started 7 s after the first (the case where,
# without fenced claims, 84 of 100 digests were sent twice). Prints how many of the N
# messages queued arrived, how many twice, and how long the two took.
# Usage: benches/two-deliverers.sh [N] [BIN]   (default 100 and target/debug/cierre)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
bin=${2:-$PWD/target/debug/cierre}
pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
db=cierre_two_deliverers
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"; psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir "$work/mail"
python3 tests/support/smtp_server.py --port "$port" --out "$work/mail" --delay-ms 3000 >"$work/smtp.out" &
until grep -q ready "$work/smtp.out" 2>/dev/null; do sleep 0.1; done
cat >"$work/daemon.toml" <<EOF
[store]
url = "$pg/$db"
[email]
from = "cierre <cierre@example.gov.co>"
templates_dir = "$PWD/templates"
[email.smtp]
host = "127.0.0.1"
port = $port
tls = "none"
timeout_secs = 10
[delivery]
lease_secs = 5
EOF
"$bin" --config "$work/daemon.toml" migrate >/dev/null
# N messages queued, one per recipient.
psql "$pg/$db" -q <<EOF
INSERT INTO outbox (idempotency_key, channel, target, subject, message_id, payload, status,
                    attempts, next_attempt_at, created_at)
SELECT 'bench:' || i, 'email', 'r' || i || '@example.gov.co', 'bench ' || i,
       '<bench.' || i || '@example.gov.co>',
       E'From: cierre <cierre@example.gov.co>\r\nTo: r' || i || E'@example.gov.co\r\nSubject: bench '
         || i || E'\r\nMessage-ID: <bench.' || i || E'@example.gov.co>\r\n\r\nhola\r\n',
       'pending', 0, now(), now()
FROM generate_series(1, $n) AS i;
EOF
start=$(date +%s.%N)
NO_COLOR=1 CIERRE_LOG=warn "$bin" --config "$work/daemon.toml" deliver >"$work/a.out" 2>&1 &
a=$!
sleep 7
NO_COLOR=1 CIERRE_LOG=warn "$bin" --config "$work/daemon.toml" deliver >"$work/b.out" 2>&1 &
b=$!
wait $a $b || true
end=$(date +%s.%N)
# Whatever a lost lease left claimed is due again after the lease: one more drain.
sleep 6
NO_COLOR=1 CIERRE_LOG=warn "$bin" --config "$work/daemon.toml" deliver >"$work/c.out" 2>&1
ids=$(grep -h -i '^message-id:' "$work"/mail/*.eml | tr -d '\r' | sort)
echo "queued:   $n"
echo "arrived:  $(echo "$ids" | sort -u | grep -c . || true) distinct, $(echo "$ids" | grep -c . || true) in all"
echo "twice:    $(echo "$ids" | uniq -d | grep -c . || true)"
echo "recorded: $(psql "$pg/$db" -Atc "SELECT status || ' ' || COUNT(*) FROM outbox GROUP BY status" | tr '\n' ' ')"
printf 'took:     %.1f s\n' "$(echo "$end - $start" | bc)"
echo "deliverer A: $(tr '\n' ' ' <"$work/a.out")"
echo "deliverer B: $(tr '\n' ' ' <"$work/b.out")"
echo "a third drain after the lease: $(tr '\n' ' ' <"$work/c.out")"
