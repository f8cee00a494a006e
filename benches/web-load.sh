#!/usr/bin/env bash
# Benchmark: the web view, the admin console and the JSON API of `cierre run` under
# concurrent requests, on a SQLite store of N contracts (the real 1,000-row sample repeated
# with distinct ids, synced from a file and evaluated: every finding open, with its raw
# record). Starts the daemon (no catch-up, so no job runs meanwhile), then fires ROUNDS
# rounds of CONCURRENCY requests at once, each round a mix of: an office head's "Mis
# hallazgos" (first page and a filtered one) and a finding's page, the admin console's
# overview, outbox and runs (signed in through its form), GET /api/findings (first page and
# filtered by office), /api/runs, /api/outbox, /api/status, /metrics and digest previews.
# Prints, per kind of request, how many were answered with which status, the median and
# slowest time and the largest body; then the daemon's peak RSS and peak private memory
# (RssAnon, sampled every 0.1 s) during the load.
# Usage: [BIN=path/to/cierre] benches/web-load.sh [CONTRACTS] [CONCURRENCY] [ROUNDS]
#        (default 200000 200 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-200000}
concurrency=${2:-200}
rounds=${3:-3}
[[ -n ${BIN:-} ]] || cargo build --release --quiet
bin=${BIN:-$PWD/target/release/cierre}
work=$(mktemp -d)
daemon=
cleanup() {
  [[ -n $daemon ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=bench-admin-token-0123456789abcdef
secret=bench-link-secret-0123456789abcdef-0123
export CIERRE__STORE__URL=sqlite://$work/bench.db
export CIERRE__SOURCE__KIND=file CIERRE__SOURCE__CONTRACTS_PATH=$work/contracts.jsonl
export CIERRE__EMAIL__TEMPLATES_DIR=$PWD/templates CIERRE__EMAIL__OUTBOX_DIR=$work/outbox
export CIERRE__HTTP__LISTEN=127.0.0.1:$port CIERRE__HTTP__TOKEN=$token
export CIERRE__HTTP__PUBLIC_URL=http://127.0.0.1:$port/ CIERRE__HTTP__LINK_SECRET=$secret
export CIERRE__SCHEDULE__CATCH_UP=false CIERRE_LOG=warn
python3 benches/contracts.py "$rows" "$work/contracts.jsonl"
"$bin" --config daemon.toml migrate >/dev/null
start=$(date +%s)
"$bin" --config daemon.toml sync >/dev/null
"$bin" --config daemon.toml evaluate --as-of 2026-02-16 --format jsonl >/dev/null
findings=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT COUNT(*) FROM findings WHERE status='open'\").fetchone()[0])" "$work/bench.db")
echo "store: $rows contracts, $findings open findings (built in $(($(date +%s) - start)) s)"
"$bin" --config daemon.toml run >"$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
# Peak memory of the daemon while the load runs.
(
  rss=0 anon=0
  while kill -0 "$daemon" 2>/dev/null && [[ ! -e $work/stop ]]; do
    while read -r key value _; do
      [[ $key == VmRSS: ]] && ((value > rss)) && rss=$value
      [[ $key == RssAnon: ]] && ((value > anon)) && anon=$value
    done 2>/dev/null <"/proc/$daemon/status" || true
    echo "$rss $anon" >"$work/peak"
    sleep 0.1
  done
) &
sampler=$!
python3 - "$port" "$token" "$secret" "$concurrency" "$rounds" "$work/bench.db" <<'PY'
import base64, concurrent.futures, hashlib, hmac, http.cookiejar, json, re, sqlite3, statistics
import sys, time, urllib.error, urllib.parse, urllib.request

port, token, secret, concurrency, rounds, db = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
base = f"http://127.0.0.1:{port}"
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def link(email):
    payload = f"1.{int(time.time()) + 86400}.{email}".encode()
    sig = hmac.new(secret.encode(), b"link\n" + payload, hashlib.sha256).digest()
    return f"{b64(payload)}.{b64(sig)}"

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
opener = urllib.request.build_opener(NoRedirect)

def fetch(path, cookie=None, data=None):
    req = urllib.request.Request(base + path, data=data)
    if cookie:
        req.add_header("Cookie", cookie)
    t = time.perf_counter()
    try:
        with opener.open(req, timeout=120) as r:
            body, status, headers = r.read(), r.status, r.headers
    except urllib.error.HTTPError as e:
        body, status, headers = e.read(), e.code, e.headers
    return status, time.perf_counter() - t, len(body), body, headers

# An office head's session (the cookie the link sets) and an admin's (the sign-in form).
head = "contratacion@integracion.example"
office_head = f"cierre_enlace={link(head)}"
status, _, _, body, _ = fetch("/admin/entrar")
csrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
form = urllib.parse.urlencode({"csrf": csrf, "nombre": "bench", "token": token, "siguiente": "/admin"}).encode()
status, _, _, _, headers = fetch("/admin/entrar", data=form)
assert status == 303, status
admin = headers["Set-Cookie"].split(";")[0]
# A finding of the office head's (routed to their entity), for its page.
con = sqlite3.connect(db)
finding = con.execute(
    "SELECT f.id FROM findings f JOIN contracts c ON c.id_contrato = f.contract_id "
    "WHERE f.status = 'open' AND c.nit_entidad = '899999061' LIMIT 1").fetchone()[0]
con.close()
mix = [
    ("mis-hallazgos", "/mis-hallazgos", office_head),
    ("mis-hallazgos?level", "/mis-hallazgos?level=vencido", office_head),
    ("mis-hallazgos/{id}", f"/mis-hallazgos/{finding}", office_head),
    ("admin", "/admin", admin),
    ("admin/envios", "/admin/envios", admin),
    ("admin/ejecuciones", "/admin/ejecuciones", admin),
    ("api/findings", "/api/findings", None),
    ("api/findings?office", "/api/findings?office=icbf&limit=1000", None),
    ("api/runs", "/api/runs", None),
    ("api/outbox", "/api/outbox", None),
    ("api/status", "/api/status", None),
    ("metrics", "/metrics", None),
    ("api/digest", f"/api/digest?to={head}&as_of=2026-02-16", None),
]
results = {}
with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
    wall = time.perf_counter()
    for _ in range(rounds):
        jobs = [(mix[i % len(mix)], pool.submit(fetch, mix[i % len(mix)][1], mix[i % len(mix)][2]))
                for i in range(concurrency)]
        for (name, _, _), job in jobs:
            status, secs, size, _, _ = job.result()
            results.setdefault(name, []).append((status, secs, size))
    wall = time.perf_counter() - wall
every = [r for rs in results.values() for r in rs]
print(f"{len(every)} requests, {concurrency} at once, in {wall:.1f} s; "
      f"slowest {max(s for _, s, _ in every):.2f} s, median {statistics.median(s for _, s, _ in every):.3f} s")
print(f"{'request':<22} {'n':>4}  statuses        median   slowest   largest body")
for name, rs in results.items():
    statuses = ",".join(f"{s}×{n}" for s, n in sorted({s: sum(1 for x in rs if x[0] == s) for s, _, _ in rs}.items()))
    print(f"{name:<22} {len(rs):>4}  {statuses:<14} {statistics.median(s for _, s, _ in rs):7.3f} s {max(s for _, s, _ in rs):7.2f} s  {max(z for _, _, z in rs) / 1024:9.1f} KiB")
PY
touch "$work/stop"
wait "$sampler" 2>/dev/null || true
read -r rss anon <"$work/peak"
awk -v r="$rss" -v a="$anon" 'BEGIN { printf "daemon: peak RSS %.1f MB, peak private %.1f MB\n", r / 1024, a / 1024 }'
