#!/usr/bin/env python3
"""End-to-end slowdown client: N streamed Anthropic Messages exchanges on one keep-alive TLS
connection to the mock server, read as a streaming client reads them. Prints the wall seconds.

usage: e2e_client.py PORT CA_FILE N
"""
import http.client
import json
import ssl
import sys
import time

port, ca, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                   "messages": [{"role": "user", "content": "hello"}]})
headers = {"content-type": "application/json", "x-mock-usage": "input=10,output=20"}
t0 = time.perf_counter()
for _ in range(n):
    conn.request("POST", "/v1/messages", body=body, headers=headers)
    r = conn.getresponse()
    while r.read(1024):
        pass
print(f"{time.perf_counter() - t0:.6f}", flush=True)
