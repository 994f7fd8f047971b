#!/usr/bin/env python3
"""flaky-http.py: an HTTP/1.1 file server for mcast's repair tests that can
misbehave on purpose: ignore ranges, close mid-transfer, fail with a status or
with 503 + Retry-After, flip bytes, stall after honest headers or trickle the
body a few bytes a second (for the first N requests, or all). Serves single ranges (206) and several
ranges (multipart/byteranges) when it behaves. Logs one JSON line per request.
Started by flaky_start in tests/helper.bash; bounded by the test's teardown."""

import argparse
import http.server
import json
import os
import socketserver
import sys
import threading
import time

ARGS = None
LOCK = threading.Lock()
COUNT = {"requests": 0}


def parse_ranges(header, size):
    """Return a list of (start, end) inclusive, or None if unsatisfiable/invalid."""
    if not header or not header.startswith("bytes="):
        return None
    out = []
    for part in header[6:].split(","):
        part = part.strip()
        if "-" not in part:
            return None
        a, b = part.split("-", 1)
        try:
            if a == "":
                n = int(b)
                if n <= 0:
                    continue
                start, end = max(0, size - n), size - 1
            else:
                start = int(a)
                end = int(b) if b else size - 1
        except ValueError:
            return None
        if start >= size or start > end:
            continue
        out.append((start, min(end, size - 1)))
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def log(self, status, sent, note=""):
        with LOCK:
            with open(ARGS.log, "a") as f:
                f.write(json.dumps({"path": self.path, "range": self.headers.get("Range"),
                                    "status": status, "bytes": sent, "note": note}) + "\n")

    def read_span(self, path, start, end):
        with open(path, "rb") as f:
            f.seek(start)
            data = bytearray(f.read(end - start + 1))
        for off in ARGS.corrupt:
            if start <= off <= end:
                data[off - start] ^= 0xFF
        return bytes(data)

    def hostile(self):
        """This request stalls or trickles (--stall, --trickle, --hostile-first)."""
        return (ARGS.stall or ARGS.trickle) and (not ARGS.hostile_first or self.n <= ARGS.hostile_first)

    def send_body(self, chunks):
        """Write body pieces; honour --close-after, --stall and --trickle. Return bytes sent, or -1 if cut."""
        sent = 0
        if self.hostile() and ARGS.stall:
            self.wfile.flush()
            time.sleep(ARGS.max_seconds)
            return -1
        if self.hostile():
            step = max(1, int(ARGS.trickle / 10))
            try:
                for piece in chunks:
                    for i in range(0, len(piece), step):
                        self.wfile.write(piece[i:i + step])
                        self.wfile.flush()
                        sent += len(piece[i:i + step])
                        time.sleep(len(piece[i:i + step]) / ARGS.trickle)
            except OSError:
                return -1
            return sent
        for piece in chunks:
            if ARGS.close_after is not None and sent + len(piece) > ARGS.close_after:
                self.wfile.write(piece[:max(0, ARGS.close_after - sent)])
                self.wfile.flush()
                sent = ARGS.close_after
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass
                return -1
            self.wfile.write(piece)
            sent += len(piece)
        return sent

    def do_HEAD(self):
        self.handle_req(head=True)

    def do_GET(self):
        self.handle_req(head=False)

    def simple(self, code, extra=None, body=b""):
        self.send_response(code)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self.log(code, len(body))

    def handle_req(self, head):
        with LOCK:
            COUNT["requests"] += 1
            n = COUNT["requests"]
        self.n = n
        if ARGS.fail_first and n <= ARGS.fail_first:
            return self.simple(503, {"Retry-After": "1"}, b"busy\n")
        if ARGS.status:
            return self.simple(ARGS.status, {}, b"forced status\n")
        rel = self.path.split("?", 1)[0].lstrip("/")
        path = os.path.realpath(os.path.join(ARGS.dir, rel))
        root = os.path.realpath(ARGS.dir)
        if not path.startswith(root + os.sep) or not os.path.isfile(path):
            return self.simple(404, {}, b"not found\n")
        size = os.path.getsize(path)
        rng = None if ARGS.no_ranges else self.headers.get("Range")
        ranges = parse_ranges(rng, size) if rng else None
        if rng and ranges == []:
            return self.simple(416, {"Content-Range": "bytes */%d" % size})
        if not ranges:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            if not ARGS.no_ranges:
                self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if head:
                return self.log(200, 0)

            def whole():
                step = 1 << 16
                for s in range(0, size, step):
                    yield self.read_span(path, s, min(size, s + step) - 1)
            return self.log(200, self.send_body(whole()))
        if len(ranges) == 1:
            s, e = ranges[0]
            self.send_response(206)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Range", "bytes %d-%d/%d" % (s, e, size))
            self.send_header("Content-Length", str(e - s + 1))
            self.end_headers()
            if head:
                return self.log(206, 0)
            return self.log(206, self.send_body([self.read_span(path, s, e)]))
        boundary = "MCASTTESTBOUNDARY"
        parts = []
        for s, e in ranges:
            hdr = ("--%s\r\nContent-Type: application/octet-stream\r\n"
                   "Content-Range: bytes %d-%d/%d\r\n\r\n" % (boundary, s, e, size)).encode()
            parts += [hdr, self.read_span(path, s, e), b"\r\n"]
        parts.append(("--%s--\r\n" % boundary).encode())
        self.send_response(206)
        self.send_header("Content-Type", "multipart/byteranges; boundary=" + boundary)
        self.send_header("Content-Length", str(sum(len(p) for p in parts)))
        self.end_headers()
        if head:
            return self.log(206, 0)
        self.log(206, self.send_body(parts), "multipart")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dir", required=True)
    p.add_argument("--addr", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--log", default=os.devnull)
    p.add_argument("--no-ranges", action="store_true")
    p.add_argument("--close-after", type=int)
    p.add_argument("--status", type=int)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--corrupt", type=int, action="append", default=[])
    p.add_argument("--stall", action="store_true",
                   help="send the headers, then nothing (the connection stays open)")
    p.add_argument("--trickle", type=float, default=0,
                   help="send the body at this many bytes a second")
    p.add_argument("--hostile-first", type=int, default=0,
                   help="only the first N requests stall or trickle (0: all)")
    p.add_argument("--max-seconds", type=int, default=600,
                   help="exit by itself after this long (bounded tests)")
    ARGS = p.parse_args()
    if ":" in ARGS.addr:
        import socket
        Server.address_family = socket.AF_INET6
    srv = Server((ARGS.addr, ARGS.port), Handler)
    threading.Timer(ARGS.max_seconds, lambda: os._exit(0)).start()
    print("listening on %s:%d" % (ARGS.addr, ARGS.port), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
