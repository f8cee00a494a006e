"""Writes N contracts shaped like the real ones, as JSON Lines, for the sync benchmarks: the
1,000-row sample of examples/secop repeated with distinct ids (`-0`, `-1`… after each
id_contrato). With --soda each row also carries the system fields the SODA API serves
(`:id` in paging order, `:updated_at`), compactly written.

Usage: python3 benches/contracts.py N OUT [--soda]   (from the repository root)
"""
import json
import sys

n, out, soda = int(sys.argv[1]), sys.argv[2], "--soda" in sys.argv[3:]
sample = [json.loads(line) for line in open("examples/secop/contracts.jsonl")]
with open(out, "w") as f:
    for i in range(n):
        v = {":id": f"row-{i:09d}", ":updated_at": "2026-11-20T00:00:00.000Z"} if soda else {}
        v.update(sample[i % len(sample)])
        v["id_contrato"] = f'{v["id_contrato"]}-{i // len(sample)}'
        if soda:
            f.write(json.dumps(v, ensure_ascii=False, separators=(",", ":")) + "\n")
        else:
            f.write(json.dumps(v, ensure_ascii=False) + "\n")
