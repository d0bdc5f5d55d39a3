#!/usr/bin/env python3
"""A local mock LLM HTTPS server for guard's privileged end-to-end tests.

Speaks each provider's wire format (Anthropic Messages, OpenAI Chat Completions, OpenAI
Responses, Gemini generateContent/streamGenerateContent) over HTTP/1.1 keep-alive TLS, with
usage numbers that are a deterministic function of the request, so a test can compare what
guard decoded with what the server sent:

  x-mock-usage: input=120,output=45,cache_read=30,cache_write=10,reasoning=5
      (missing keys are 0; without the header: input = request body length, output = 7)
  x-mock-encoding: gzip | deflate | br | zstd    (used only if the client's Accept-Encoding
                                                   lists it; br/zstd need the Python modules)

Every response also carries `x-mock-usage-normalised`, the partition guard must report.
With `--tool-call CMD` the first Responses request that offers a shell tool gets a
`function_call` of that tool running CMD (`exec_command` -> {"cmd": CMD}, `shell_command` ->
{"command": CMD}, `shell` -> {"command": shlex.split(CMD)}); the request carrying its
`function_call_output` gets a plain message, and that output's text is written to `--tool-output`.

With `x-mock-tool-call: CMD` and `x-mock-tool-id: ID` on a Messages, Chat Completions or Responses
request that offers a tool named `bash`, the answer (streamed or not) is a call of `bash` with
{"command": CMD} under the call id ID: what a model asks of a coding agent.

Stdlib only (brotli/zstandard optional). Usage: server.py --port 8443 --cert c.pem --key k.pem
"""

import argparse
import gzip
import json
import os
import shlex
import ssl
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import brotli  # type: ignore
except ImportError:
    brotli = None
try:
    import zstandard  # type: ignore
except ImportError:
    zstandard = None


def parse_usage(header, body_len):
    u = {"input": body_len, "output": 7, "cache_read": 0, "cache_write": 0, "reasoning": 0}
    if header:
        u = {k: 0 for k in u}
        for part in header.split(","):
            k, _, v = part.strip().partition("=")
            if k in u:
                u[k] = int(v)
    return u


def compress(enc, data):
    if enc == "gzip":
        return gzip.compress(data)
    if enc == "deflate":
        return zlib.compress(data)
    if enc == "br" and brotli is not None:
        return brotli.compress(data)
    if enc == "zstd" and zstandard is not None:
        return zstandard.ZstdCompressor().compress(data)
    return None


def sse(events):
    out = []
    for name, obj in events:
        data = obj if isinstance(obj, str) else json.dumps(obj)
        out.append((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
    return "".join(out).encode()


# ---- provider formats; `u` is the normalised partition ----

def anthropic(model, stream, u):
    usage = {"input_tokens": u["input"], "cache_read_input_tokens": u["cache_read"],
             "cache_creation_input_tokens": u["cache_write"], "output_tokens": u["output"] + u["reasoning"]}
    if not stream:
        return "application/json", json.dumps({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": "Hello from the mock."}],
            "stop_reason": "end_turn", "usage": usage}).encode()
    start = dict(usage, output_tokens=1)
    return "text/event-stream", sse([
        ("message_start", {"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant",
                                                                "content": [], "model": model, "usage": start}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": usage["output_tokens"]}}),
        ("message_stop", {"type": "message_stop"}),
    ])


def chat(model, stream, include_usage, u):
    usage = {"prompt_tokens": u["input"] + u["cache_read"], "completion_tokens": u["output"] + u["reasoning"],
             "total_tokens": u["input"] + u["cache_read"] + u["output"] + u["reasoning"],
             "prompt_tokens_details": {"cached_tokens": u["cache_read"]},
             "completion_tokens_details": {"reasoning_tokens": u["reasoning"]}}
    base = {"id": "chatcmpl-mock", "created": 1, "model": model}
    if not stream:
        return "application/json", json.dumps(dict(base, object="chat.completion", usage=usage, choices=[
            {"index": 0, "message": {"role": "assistant", "content": "Hello from the mock."}, "finish_reason": "stop"}])).encode()
    chunk = dict(base, object="chat.completion.chunk")
    events = [
        ("", dict(chunk, choices=[{"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "finish_reason": None}])),
        ("", dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])),
    ]
    if include_usage:
        events.append(("", dict(chunk, choices=[], usage=usage)))
    events.append(("", "[DONE]"))
    return "text/event-stream", sse(events)


def responses(model, stream, u):
    usage = {"input_tokens": u["input"] + u["cache_read"], "input_tokens_details": {"cached_tokens": u["cache_read"]},
             "output_tokens": u["output"] + u["reasoning"], "output_tokens_details": {"reasoning_tokens": u["reasoning"]},
             "total_tokens": u["input"] + u["cache_read"] + u["output"] + u["reasoning"]}
    msg = {"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": "Hello from the mock.", "annotations": []}]}
    resp = {"id": "resp_mock", "object": "response", "created_at": 1, "status": "completed", "model": model,
            "output": [msg], "usage": usage}
    if not stream:
        return "application/json", json.dumps(resp).encode()
    pending = dict(resp, status="in_progress", output=[], usage=None)
    return "text/event-stream", sse([
        ("response.created", {"type": "response.created", "sequence_number": 0, "response": pending}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_mock",
                                        "output_index": 0, "content_index": 0, "delta": "Hello"}),
        ("response.completed", {"type": "response.completed", "sequence_number": 2, "response": resp}),
    ])


# --tool-call: the command, where its output goes, and whether the call was handed out.
TOOL = {"cmd": None, "output": None, "sent": False, "lock": threading.Lock()}
SHELL_TOOLS = {
    "exec_command": lambda cmd: {"cmd": cmd},
    "shell_command": lambda cmd: {"command": cmd},
    "shell": lambda cmd: {"command": shlex.split(cmd)},
}


def tool_call(req):
    """The function_call item this Responses request gets, or None. Writes a returned output."""
    if TOOL["cmd"] is None:
        return None
    items = req.get("input") if isinstance(req.get("input"), list) else []
    outputs = [i for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]
    if outputs:
        out = outputs[-1].get("output")
        if not isinstance(out, str):
            out = json.dumps(out)
        if TOOL["output"]:
            with open(TOOL["output"] + ".new", "w") as f:
                f.write(out)
            os.replace(TOOL["output"] + ".new", TOOL["output"])
        return None
    offered = [t.get("name") for t in req.get("tools") or [] if isinstance(t, dict)]
    name = next((n for n in SHELL_TOOLS if n in offered), None)
    with TOOL["lock"]:
        if name is None or TOOL["sent"]:
            return None
        TOOL["sent"] = True
    return {"type": "function_call", "id": "fc_mock", "call_id": "call_mock", "status": "completed",
            "name": name, "arguments": json.dumps(SHELL_TOOLS[name](TOOL["cmd"]))}


def bash_call(req, headers):
    """(call id, arguments JSON) when the request asks for a `bash` call and offers the tool."""
    cmd, cid = headers.get("x-mock-tool-call"), headers.get("x-mock-tool-id")
    if not cmd or not cid:
        return None
    names = []
    for t in req.get("tools") or []:
        if isinstance(t, dict):
            names.append(t.get("name") or (t.get("function") or {}).get("name"))
    if "bash" not in names:
        return None
    return cid, json.dumps({"command": cmd})


def anthropic_call(model, stream, u, call):
    cid, args = call
    usage = {"input_tokens": u["input"], "cache_read_input_tokens": u["cache_read"],
             "cache_creation_input_tokens": u["cache_write"], "output_tokens": u["output"]}
    block = {"type": "tool_use", "id": cid, "name": "bash", "input": json.loads(args)}
    if not stream:
        return "application/json", json.dumps({"id": "msg_mock_call", "type": "message", "role": "assistant", "model": model,
                                               "content": [block], "stop_reason": "tool_use", "usage": usage}).encode()
    half = len(args) // 2
    return "text/event-stream", sse([
        ("message_start", {"type": "message_start", "message": {"id": "msg_mock_call", "type": "message", "role": "assistant",
                                                                "content": [], "model": model, "usage": dict(usage, output_tokens=1)}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": dict(block, input={})}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": args[:half]}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": args[half:]}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": usage["output_tokens"]}}),
        ("message_stop", {"type": "message_stop"}),
    ])


def chat_call(model, stream, u, call):
    cid, args = call
    usage = {"prompt_tokens": u["input"] + u["cache_read"], "completion_tokens": u["output"],
             "total_tokens": u["input"] + u["cache_read"] + u["output"], "prompt_tokens_details": {"cached_tokens": u["cache_read"]}}
    base = {"id": "chatcmpl-mock-call", "created": 1, "model": model}
    tc = {"id": cid, "type": "function", "function": {"name": "bash", "arguments": args}}
    if not stream:
        return "application/json", json.dumps(dict(base, object="chat.completion", usage=usage, choices=[
            {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [tc]}, "finish_reason": "tool_calls"}])).encode()
    chunk = dict(base, object="chat.completion.chunk")
    half = len(args) // 2
    first = {"index": 0, "id": cid, "type": "function", "function": {"name": "bash", "arguments": args[:half]}}
    rest = {"index": 0, "function": {"arguments": args[half:]}}
    return "text/event-stream", sse([
        ("", dict(chunk, choices=[{"index": 0, "delta": {"role": "assistant", "tool_calls": [first]}, "finish_reason": None}])),
        ("", dict(chunk, choices=[{"index": 0, "delta": {"tool_calls": [rest]}, "finish_reason": None}])),
        ("", dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], usage=usage)),
        ("", "[DONE]"),
    ])


def responses_call(model, stream, u, item):
    """A Responses answer whose only output is the function call `item`."""
    usage = {"input_tokens": u["input"] + u["cache_read"], "input_tokens_details": {"cached_tokens": u["cache_read"]},
             "output_tokens": u["output"] + u["reasoning"], "output_tokens_details": {"reasoning_tokens": u["reasoning"]},
             "total_tokens": u["input"] + u["cache_read"] + u["output"] + u["reasoning"]}
    resp = {"id": "resp_mock_call", "object": "response", "created_at": 1, "status": "completed", "model": model,
            "output": [item], "usage": usage}
    if not stream:
        return "application/json", json.dumps(resp).encode()
    pending = dict(resp, status="in_progress", output=[], usage=None)
    return "text/event-stream", sse([
        ("response.created", {"type": "response.created", "sequence_number": 0, "response": pending}),
        ("response.output_item.added", {"type": "response.output_item.added", "sequence_number": 1,
                                        "output_index": 0, "item": dict(item, arguments="", status="in_progress")}),
        ("response.output_item.done", {"type": "response.output_item.done", "sequence_number": 2,
                                       "output_index": 0, "item": item}),
        ("response.completed", {"type": "response.completed", "sequence_number": 3, "response": resp}),
    ])


def gemini(model, mode, u):
    meta = {"promptTokenCount": u["input"] + u["cache_read"], "cachedContentTokenCount": u["cache_read"],
            "candidatesTokenCount": u["output"], "thoughtsTokenCount": u["reasoning"],
            "totalTokenCount": u["input"] + u["cache_read"] + u["output"] + u["reasoning"]}
    def chunk(text, m):
        return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
                "usageMetadata": m, "modelVersion": model}
    first = {"promptTokenCount": meta["promptTokenCount"], "totalTokenCount": meta["promptTokenCount"]}
    if mode == "json":
        return "application/json", json.dumps(chunk("Hello from the mock.", meta)).encode()
    if mode == "sse":
        return "text/event-stream", sse([("", chunk("Hello", first)), ("", chunk(" there", meta))])
    return "application/json", ("[" + json.dumps(chunk("Hello", first)) + ",\r\n" + json.dumps(chunk(" there", meta)) + "]").encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    # Headers and body go out as two writes: without TCP_NODELAY, Nagle plus the client's delayed
    # ACK stall every response by ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def send(self, status, ctype, body):
        enc = self.headers.get("x-mock-encoding", "").strip().lower()
        # Like a real server, only use a coding the client said it accepts.
        accepted = [c.split(";")[0].strip().lower() for c in self.headers.get("Accept-Encoding", "").split(",")]
        packed = compress(enc, body) if enc and enc in accepted else None
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if packed is not None:
            self.send_header("Content-Encoding", enc)
            body = packed
        if getattr(self, "usage", None) is not None:
            self.send_header("x-mock-usage-normalised", json.dumps(self.usage, separators=(",", ":")))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        self.usage = None
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.usage = None
        if self.path.rstrip("/").endswith("/models"):
            self.send(200, "application/json", json.dumps({"object": "list", "data": [{"id": "mock-model", "object": "model"}]}).encode())
        else:
            self.send(404, "application/json", b'{"error":{"type":"not_found"}}')

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            req = {}
        u = parse_usage(self.headers.get("x-mock-usage"), len(raw))
        self.usage = u
        path = self.path.split("?")[0]
        query = self.path.partition("?")[2]
        model = req.get("model", "mock-model")
        stream = bool(req.get("stream"))
        if path.endswith("/messages/count_tokens"):
            self.usage = None
            return self.send(200, "application/json", json.dumps({"input_tokens": u["input"]}).encode())
        if path.endswith("/messages"):
            # Anthropic counts thinking inside output_tokens: no client can split it out, so the
            # partition guard can recover puts it all in `output`.
            self.usage = dict(u, output=u["output"] + u["reasoning"], reasoning=0)
            call = bash_call(req, self.headers)
            if call is not None:
                return self.send(200, *anthropic_call(model, stream, self.usage, call))
            return self.send(200, *anthropic(model, stream, u))
        if path.endswith("/chat/completions"):
            inc = bool((req.get("stream_options") or {}).get("include_usage"))
            call = bash_call(req, self.headers)
            if call is not None:
                self.usage = dict(u, reasoning=0)
                return self.send(200, *chat_call(model, stream, self.usage, call))
            return self.send(200, *chat(model, stream, inc, u))
        if path.endswith("/responses"):
            item = tool_call(req)
            call = bash_call(req, self.headers)
            if call is not None:
                item = {"type": "function_call", "id": "fc_" + call[0], "call_id": call[0], "status": "completed",
                        "name": "bash", "arguments": call[1]}
            if item is not None:
                return self.send(200, *responses_call(model, stream, u, item))
            return self.send(200, *responses(model, stream, u))
        if ":generateContent" in path or ":streamGenerateContent" in path:
            gmodel = path.rsplit("/", 1)[-1].split(":")[0]
            mode = "json" if ":generateContent" in path else ("sse" if "alt=sse" in query else "array")
            return self.send(200, *gemini(gmodel, mode, u))
        self.usage = None
        self.send(404, "application/json", b'{"error":{"type":"not_found_error","message":"no such endpoint"}}')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tool-call", help="answer the first Responses request with this shell command")
    ap.add_argument("--tool-output", help="where the tool call's output is written")
    a = ap.parse_args()
    TOOL["cmd"], TOOL["output"] = a.tool_call, a.tool_output
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.load_cert_chain(a.cert, a.key)
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(f"mock LLM listening on https://{a.host}:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
