#!/usr/bin/env python3
"""Writes a benchmark store: N contracts (the real 1,000-row sample repeated with distinct
ids and processes), 3 documents per contract (two on the contract, one on its process, names
from the real FEAB list) and one guarantee per two contracts, into a migrated SQLite store.
Usage: python3 benches/store.py N STORE.db   (from the repository root)"""
import csv, json, random, sqlite3, sys
n, db = int(sys.argv[1]), sys.argv[2]
random.seed(7)
sample = [json.loads(l) for l in open("examples/secop/contracts.jsonl")]
names = [r["nombre_archivo"] for r in csv.DictReader(open("examples/secop/document-names.feab.csv"))]
day = lambda v: v[:10] if v else None
def money(v):
    try:
        return int(round(float(v) * 100))
    except (TypeError, ValueError):
        return None
def flag(v):
    return {"si": "si", "no": "no"}.get((v or "").strip().lower())
con = sqlite3.connect(db)
con.execute("PRAGMA journal_mode=WAL")
con.execute("PRAGMA synchronous=OFF")
now = "2026-02-15T12:00:00Z"
contracts, documents, guarantees = [], [], []
types = ["Cumplimiento", "Calidad del servicio", "Estabilidad y calidad de la obra",
         "Calidad y correcto funcionamiento de los bienes", "Pago de salarios y prestaciones"]
def flush():
    con.executemany(
        "INSERT INTO contracts (id_contrato, proceso_de_compra, referencia_del_contrato, nit_entidad, "
        "nombre_entidad, estado_contrato, tipo_de_contrato, modalidad_de_contratacion, "
        "justificacion_modalidad_de, fecha_de_firma, fecha_de_inicio, fecha_de_fin, liquidacion, "
        "obligacion_ambiental, obligaciones_postconsumo, fecha_fin_liquidacion, valor_del_contrato, "
        "valor_pendiente_de_pago, dias_adicionados, ultima_actualizacion, nombre_supervisor, raw, "
        "content_hash, first_seen, last_seen, last_changed) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,x'',?,?,?,?)", contracts)
    con.executemany(
        "INSERT INTO documents (id_documento, id_contrato, proceso, nombre_archivo, descripcion, "
        "fecha_carga, raw, content_hash, first_seen, last_seen, last_changed) "
        "VALUES (?,?,?,?,?,?,x'',?,?,?,?)", documents)
    con.executemany(
        "INSERT INTO guarantees (guarantee_key, id_contrato, numeropoliza, tipopoliza, "
        "subtipopoliza, fechafinpoliza, estado, raw, content_hash, first_seen, last_seen, "
        "last_changed) VALUES (?,?,?,?,?,?,?,x'',?,?,?,?)", guarantees)
    con.commit()
    contracts.clear(); documents.clear(); guarantees.clear()
for i in range(n):
    r = sample[i % len(sample)]
    copy = i // len(sample)
    cid = f'{r["id_contrato"]}-{copy}'
    proc = f'{r.get("proceso_de_compra", "CO1.BDOS.0")}-{copy}'
    contracts.append((cid, proc, r.get("referencia_del_contrato"), r.get("nit_entidad"),
        r.get("nombre_entidad"), r.get("estado_contrato"), r.get("tipo_de_contrato"),
        r.get("modalidad_de_contratacion"), r.get("justificacion_modalidad_de"),
        day(r.get("fecha_de_firma")), day(r.get("fecha_de_inicio_del_contrato")),
        day(r.get("fecha_de_fin_del_contrato")), flag(r.get("liquidaci_n")),
        flag(r.get("obligaci_n_ambiental")), flag(r.get("obligaciones_postconsumo")),
        day(r.get("fecha_fin_liquidacion")), money(r.get("valor_del_contrato")),
        money(r.get("valor_pendiente_de_pago")), int(float(r.get("dias_adicionados") or 0)),
        day(r.get("ultima_actualizacion")), r.get("nombre_supervisor"), f"h{i}", now, now, now))
    for k in range(3):
        name = names[(i * 3 + k) % len(names)]
        owner = None if k == 2 else cid
        documents.append((f"D{i}-{k}", owner, proc, name, None,
            f"2025-{1 + (i + k) % 12:02d}-{1 + k * 9:02d}", f"d{i}{k}", now, now, now))
    if i % 2 == 0:
        guarantees.append((f"{cid}|P{i}|{k}", cid, f"P{i}", "Cumplimiento", types[i % len(types)],
            f"{2024 + i % 5}-{1 + i % 12:02d}-15", "Aceptada", f"g{i}", now, now, now))
    if len(contracts) >= 20000:
        flush()
flush()
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
