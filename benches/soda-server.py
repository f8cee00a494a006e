#!/usr/bin/env python3
"""A local SODA endpoint for benchmarks: serves a JSON Lines file of rows that carry `:id`,
sorted by it, with the keyset paging cierre uses ($order=:id, $where=:id > 'x', $limit).
Bodies are streamed straight from the file, so the server costs little per row.

Usage: benches/soda-server.py ROWS.jsonl PORT
"""
import bisect
import re
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

path, port = sys.argv[1], int(sys.argv[2])
ids, offsets = [], []
with open(path, "rb") as f:
    pos = 0
    for line in f:
        m = re.search(rb'":id":"([^"]+)"', line)
        ids.append(m.group(1).decode())
        offsets.append(pos)
        pos += len(line)
    offsets.append(pos)
assert ids == sorted(ids), "rows must be sorted by :id"
data = open(path, "rb")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path != "/resource/jbjy-vk9h.json":
            # Other datasets (documents, guarantees) are empty here.
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")
            return
        limit = int(q.get("$limit", "1000"))
        m = re.search(r":id > '([^']*)'", q.get("$where", ""))
        start = bisect.bisect_right(ids, m.group(1)) if m else 0
        end = min(start + limit, len(ids))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(b):
            if b:
                self.wfile.write(b"%x\r\n" % len(b) + b + b"\r\n")

        chunk(b"[")
        i = start
        while i < end:
            j = min(i + 256, end)
            data.seek(offsets[i])
            block = data.read(offsets[j] - offsets[i])
            lines = block.rstrip(b"\n").split(b"\n")
            chunk((b"," if i > start else b"") + b",".join(lines))
            i = j
        chunk(b"]")
        self.wfile.write(b"0\r\n\r\n")


print(f"serving {len(ids)} rows on 127.0.0.1:{port}", flush=True)
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
