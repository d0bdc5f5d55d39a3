#!/usr/bin/env python3
"""Records an HTTP/2 connection between two real python-hyper `h2` peers (pip install h2==4.*),
run against each other in memory, for guard's decoder tests: padded DATA, HEADERS with priority
fields, a header block split into CONTINUATION frames, PING, and a second request whose headers
come from the dynamic table. The Rust `h2` crate never pads, hence this second implementation.

Output (h2_padded.bin): records of [b'W' client wrote | b'R' client read][u32 BE length][bytes].
Run: python3 h2_padded.py > h2_padded.bin
"""
import hashlib
import json
import struct
import sys

from h2.config import H2Configuration
from h2.connection import H2Connection

client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
server = H2Connection(H2Configuration(client_side=False, header_encoding=None))
records = []


def client_sends():
    data = client.data_to_send()
    if data:
        records.append((b"W", data))
        return server.receive_data(data)
    return []


def server_sends():
    data = server.data_to_send()
    if data:
        records.append((b"R", data))
        return client.receive_data(data)
    return []


client.initiate_connection()
client_sends()
server.initiate_connection()
server_sends()
client_sends()

# Hex digits barely compress under Huffman: 40,000 of them make a header block over 16 KiB.
big = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(625))


def request(stream, model, prompt, trace, weight=None):
    body = json.dumps({"model": model, "stream": True, "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": prompt}]}).encode()
    headers = [(":method", "POST"), (":scheme", "https"), (":authority", "api.openai.com"),
               (":path", "/v1/chat/completions"), ("content-type", "application/json"),
               ("authorization", "Bearer sk-test-secret")] + ([("x-trace", trace)] if trace else [])
    # (python h2 adds priority fields after splitting a block, so only a small block gets them.)
    client.send_headers(stream, headers, priority_weight=weight)
    client.send_data(stream, body, end_stream=True, pad_length=9)
    client_sends()


def respond(stream, model, prompt_tokens, completion_tokens, cached):
    server.send_headers(stream, [(":status", "200"), ("content-type", "text/event-stream")])
    chunks = [
        {"id": "c", "object": "chat.completion.chunk", "model": model,
         "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"id": "c", "object": "chat.completion.chunk", "model": model, "choices": [],
         "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                   "prompt_tokens_details": {"cached_tokens": cached},
                   "completion_tokens_details": {"reasoning_tokens": 0}}},
    ]
    for i, c in enumerate(chunks):
        server.send_data(stream, f"data: {json.dumps(c)}\n\n".encode(), pad_length=16 + i)
        server_sends()
    server.send_data(stream, b"data: [DONE]\n\n", end_stream=True, pad_length=255)
    server_sends()
    client_sends()


request(1, "gpt-4.1", "first", big)
server.ping(b"pingpong")
server_sends()
client_sends()
respond(1, "gpt-4.1", 120, 30, 100)
# The same headers again (bar the big one, too large for the table): this block is mostly
# dynamic-table references.
request(3, "gpt-4.1", "second", None, weight=200)
respond(3, "gpt-4.1", 200, 50, 0)
client.close_connection()
client_sends()

out = sys.stdout.buffer
for d, data in records:
    out.write(d + struct.pack(">I", len(data)) + data)
