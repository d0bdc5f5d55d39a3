#!/usr/bin/env python3
"""The mock LLM server over HTTP/2 (TLS, ALPN h2), for guard's privileged HTTP/2 tests: the same
provider formats and usage rules as server.py (whose functions it reuses), one exchange per
stream, many streams per connection. Uses the python-hyper `h2` state machine (pip h2).

Usage: h2_server.py --port 0 --cert c.pem --key k.pem   (prints the URL once listening)
"""

import argparse
import json
import os
import socket
import ssl
import sys
import threading

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RequestReceived, StreamEnded

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server as mock  # noqa: E402


def respond(headers, body):
    path = headers.get(":path", "/")
    req = json.loads(body or b"{}")
    u = mock.parse_usage(headers.get("x-mock-usage"), len(body))
    model, stream = req.get("model", "mock-model"), bool(req.get("stream"))
    if path.endswith("/messages"):
        return dict(u, output=u["output"] + u["reasoning"], reasoning=0), *mock.anthropic(model, stream, u)
    if path.endswith("/chat/completions"):
        inc = bool((req.get("stream_options") or {}).get("include_usage"))
        return u, *mock.chat(model, stream, inc, u)
    if path.endswith("/responses"):
        return u, *mock.responses(model, stream, u)
    return None, "application/json", b'{"error":{"type":"not_found_error"}}'


def serve(sock):
    conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    pending = {}
    while True:
        data = sock.recv(65536)
        if not data:
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, RequestReceived):
                pending[ev.stream_id] = (dict(ev.headers), bytearray())
            elif isinstance(ev, DataReceived):
                pending[ev.stream_id][1].extend(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, StreamEnded):
                headers, body = pending.pop(ev.stream_id)
                usage, ctype, out = respond(headers, bytes(body))
                status = "200" if usage is not None else "404"
                resp = [(":status", status), ("content-type", ctype), ("content-length", str(len(out)))]
                if usage is not None:
                    resp.append(("x-mock-usage-normalised", json.dumps(usage, separators=(",", ":"))))
                conn.send_headers(ev.stream_id, resp)
                conn.send_data(ev.stream_id, out, end_stream=True)
        sock.sendall(conn.data_to_send())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    a = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_alpn_protocols(["h2"])
    ctx.load_cert_chain(a.cert, a.key)
    lsock = socket.create_server(("127.0.0.1", a.port))
    print(f"mock LLM (h2) listening on https://127.0.0.1:{lsock.getsockname()[1]}", flush=True)
    while True:
        raw, _ = lsock.accept()
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            continue
        threading.Thread(target=serve, args=(tls,), daemon=True).start()


if __name__ == "__main__":
    main()
