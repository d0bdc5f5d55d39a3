#!/usr/bin/env python3
"""Opens N TLS connections to the mock server, makes one exchange on each, and keeps them all
open until stdin closes, so the daemon tracks N live connections. Prints "ready" when all are up.

usage: hold_connections.py PORT CA_FILE N
"""
import http.client
import json
import ssl
import sys

port, ca, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
conns = []
for _ in range(n):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    c.request("POST", "/v1/chat/completions", body=body, headers={"content-type": "application/json"})
    c.getresponse().read()
    conns.append(c)
print("ready", flush=True)
sys.stdin.read()
