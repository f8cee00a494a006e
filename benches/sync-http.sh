#!/usr/bin/env bash
# Benchmark: `cierre sync` over the SODA API from a local server (benches/soda-server.py)
# holding N contracts shaped like the real ones (the 1,000-row sample repeated with distinct
# ids and `:id`s). Prints first what the server alone delivers (curl reading every page),
# then the sync: seconds, rows/s and peak RSS.
# Usage: benches/sync-http.sh [ROWS] [PAGE_SIZE]   (defaults 100000, 50000)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-100000}
page=${2:-50000}
cargo build --release --quiet
work=$(mktemp -d)
python3 benches/contracts.py "$rows" "$work/contracts.jsonl" --soda
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 benches/soda-server.py "$work/contracts.jsonl" "$port" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
until grep -q serving "$work/server.log" 2>/dev/null; do sleep 0.2; done
base=http://127.0.0.1:$port/resource/jbjy-vk9h.json
start=$(date +%s.%N)
for ((k = 0; k * page < rows; k++)); do
  where=""
  if ((k > 0)); then where=$(printf "&%%24where=:id%%20%%3E%%20%%27row-%09d%%27" $((k * page - 1))); fi
  curl -sf "$base?%24order=:id&%24limit=$page$where" -o /dev/null
done
awk -v n="$rows" -v s="$(echo "$(date +%s.%N) - $start" | bc)" \
  'BEGIN { printf "%-22s %8d rows %7.2f s %9.0f rows/s\n", "server alone (curl)", n, s, n / s }'
bin=$PWD/target/release/cierre
export CIERRE__SOURCE__KIND=socrata CIERRE__SOURCE__BASE_URL=http://127.0.0.1:$port
export CIERRE__SOURCE__PAGE_SIZE=$page
export CIERRE__STORE__URL=sqlite://$work/bench.db
export CIERRE__EMAIL__TEMPLATES_DIR=$PWD/templates CIERRE_LOG=warn
source benches/measure.sh
measure "sync (all new)" "$bin" --config daemon.toml sync
measure "sync (all unchanged)" "$bin" --config daemon.toml sync
