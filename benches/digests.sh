#!/usr/bin/env bash
# Benchmark: `cierre notify` on a SQLite store of open findings routed to many recipients —
# by default 1,000,000 findings (two per contract): 800,000 over 10,000 offices (one per
# entity, a head each, 80 findings each) and 200,000 that no route matches, for the fallback
# recipient. Every finding is overdue ("vencido", daily), so every digest is due. Findings
# are written straight into the store (no evaluation). Times `notify --dry-run` (routing and
# counting only) and `notify` (every digest rendered with its workbook and queued), with
# peak RSS and peak private memory, then prints the sizes of the queued messages.
# Usage: benches/digests.sh [FINDINGS] [OFFICES]   (default 1000000 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
findings=${1:-1000000}
offices=${2:-10000}
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=$PWD/target/release/cierre
# The sample configuration with one office and route per synthetic entity.
cp daemon.toml "$work/daemon.toml"
python3 - "$offices" >>"$work/daemon.toml" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f'[[offices]]\nid = "o{i}"\nname = "Oficina {i}"\n'
          f'head = {{ name = "Jefe {i}", email = "jefe{i}@entidad{i}.example" }}\n')
    print(f'[[routes]]\noffice = "o{i}"\nmatch = {{ nit_entidad = "9{i:08d}" }}\n')
PY
export CIERRE__STORE__URL=sqlite://$work/bench.db
export CIERRE__SOURCE__KIND=file CIERRE__SOURCE__CONTRACTS_PATH=$work/none.jsonl
export CIERRE__EMAIL__TEMPLATES_DIR=$PWD/templates CIERRE__EMAIL__OUTBOX_DIR=$work/outbox
export CIERRE_LOG=warn
"$bin" --config "$work/daemon.toml" migrate >/dev/null
start=$(date +%s)
python3 - "$findings" "$offices" "$work/bench.db" <<'PY'
import json, sqlite3, sys
n, offices, db = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sample = [json.loads(l) for l in open("examples/secop/contracts.jsonl")]
con = sqlite3.connect(db)
con.execute("PRAGMA journal_mode=WAL")
con.execute("PRAGMA synchronous=OFF")
now = "2026-02-15T12:00:00Z"
contracts, findings = [], []
routed = n * 4 // 5
reasons = {
    "closable": [
        "Contrato de prestación de servicios profesionales y de apoyo a la gestión (Ley 1150 de 2007 art. 2 num. 4 lit. h).",
        "El plazo de ejecución terminó el 21 de julio de 2025 (fecha de fin del contrato).",
        "SECOP II aún muestra el estado «Modificado»; el expediente sigue abierto.",
        "No requiere liquidación (campo «liquidación»: No; Ley 80 de 1993 art. 60, modificado por el Decreto-Ley 019 de 2012 art. 217).",
        "Sin obligaciones ambientales ni posconsumo señaladas, ni garantías de calidad, estabilidad o mantenimiento vigentes.",
        "Debe cerrarse el expediente electrónico en SECOP II (Circular Externa 002 de 2023 de Colombia Compra Eficiente, contratos de prestación de servicios).",
        "Plazo para el cierre: 30 días hábiles desde el 22 de julio de 2025, hasta el 4 de septiembre de 2025.",
    ],
    "state_outdated": [
        "SECOP II aún muestra el estado «Modificado», pero el plazo de ejecución terminó el 21 de julio de 2025.",
        "Han pasado más de 10 días hábiles: deben publicarse en SECOP II los documentos y actos que reflejen el estado real del contrato (Ley 1150 de 2007 art. 3; Decreto 1082 de 2015 art. 2.2.1.1.1.7.1).",
        "Plazo para actualizar el estado: hasta el 22 de agosto de 2025.",
    ],
}
def flush():
    con.executemany(
        "INSERT INTO contracts (id_contrato, referencia_del_contrato, nit_entidad, nombre_entidad, "
        "estado_contrato, objeto_del_contrato, fecha_de_fin, valor_pendiente_de_pago, "
        "nombre_supervisor, url_proceso, raw, content_hash, first_seen, last_seen, last_changed) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,x'',?,?,?,?)", contracts)
    con.executemany(
        "INSERT INTO findings (contract_id, kind, stage, status, since, deadline, "
        "business_days_left, level, step, reasons, missing, evaluated_on, opened_on, updated_at) "
        "VALUES (?,?,'','open',?,?,?,'vencido',NULL,?,'[]','2026-02-16','2026-02-16',?)", findings)
    con.commit()
    contracts.clear(); findings.clear()
for i in range(n // 2):
    r = sample[i % len(sample)]
    cid = f"CO1.PCCNTR.B{i}"
    # Contracts of routed entities first, spread over the offices; then unrouted ones.
    nit = f"9{i % offices:08d}" if 2 * i < routed else "800000000"
    end = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}"
    contracts.append((cid, r.get("referencia_del_contrato") or cid, nit, r.get("nombre_entidad"),
        "Modificado", r.get("objeto_del_contrato"), end, (i % 7) * 100000000, r.get("nombre_supervisor"),
        r.get("urlproceso", {}).get("url") if isinstance(r.get("urlproceso"), dict) else None,
        f"h{i}", now, now, now))
    for kind, days in (("closable", -(i % 400) - 1), ("state_outdated", -(i % 300) - 1)):
        findings.append((cid, kind, end, "2025-09-04", days, json.dumps(reasons[kind], ensure_ascii=False), now))
    if len(contracts) >= 20000:
        flush()
flush()
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
PY
echo "store of $findings open findings over $offices offices and the fallback built in $(( $(date +%s) - start )) s"
sync
rows=$findings
source benches/measure.sh
measure "notify --dry-run" "$bin" --config "$work/daemon.toml" notify --as-of 2026-02-16 --dry-run
measure "notify" "$bin" --config "$work/daemon.toml" notify --as-of 2026-02-16
sqlite3 "$work/bench.db" "SELECT 'queued: ' || COUNT(*) || ' digests, ' || ROUND(SUM(LENGTH(payload)) / 1e6, 1) || ' MB in all, largest ' || ROUND(MAX(LENGTH(payload)) / 1e6, 2) || ' MB' FROM outbox WHERE channel = 'email'"
sqlite3 "$work/bench.db" "SELECT 'fallback: ' || target || ' ' || ROUND(LENGTH(payload) / 1e6, 2) || ' MB' FROM outbox WHERE target LIKE 'contratacion.central%'"
