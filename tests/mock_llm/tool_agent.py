#!/usr/bin/env python3
"""A minimal coding agent on a real SDK: it offers the model a `bash` tool, runs the command the
model's tool call carries with `bash -c`, and returns its output; then it runs a command of its
own (not proposed by any model). The mock answers with the call when asked to by the
x-mock-tool-* headers.

Usage: tool_agent.py --base URL --ca CA --api openai_chat|anthropic|openai_responses
                     [--stream] --command CMD --call-id ID [--own CMD]
Prints {"call_id": ID the SDK parsed, "ran": CMD it ran}.
"""

import argparse
import json
import subprocess

import anthropic
import openai

try:  # newer SDKs ship their HTTP client as `httpx2`; older ones use `httpx`
    import httpx2 as httpx  # type: ignore
except ImportError:
    import httpx  # type: ignore

BASH = {"name": "bash", "description": "Run a shell command",
        "schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}


def ask_anthropic(a, headers):
    client = anthropic.Anthropic(base_url=a.base, api_key="sk-mock", http_client=httpx.Client(verify=a.ca))
    tools = [{"name": "bash", "description": BASH["description"], "input_schema": BASH["schema"]}]
    msgs = [{"role": "user", "content": "clean up the build"}]
    kw = dict(model="claude-sonnet-4-5", max_tokens=256, messages=msgs, tools=tools, extra_headers=headers)
    if a.stream:
        with client.messages.stream(**kw) as s:
            msg = s.get_final_message()
    else:
        msg = client.messages.create(**kw)
    use = next(b for b in msg.content if b.type == "tool_use")
    return use.id, use.input["command"], lambda out: client.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, tools=tools,
        messages=msgs + [{"role": "assistant", "content": msg.content},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": out}]}])


def ask_chat(a, headers):
    client = openai.OpenAI(base_url=a.base + "/v1", api_key="sk-mock", http_client=httpx.Client(verify=a.ca))
    tools = [{"type": "function", "function": {"name": "bash", "description": BASH["description"], "parameters": BASH["schema"]}}]
    msgs = [{"role": "user", "content": "clean up the build"}]
    if a.stream:
        cid, name, args = None, None, ""
        for chunk in client.chat.completions.create(model="gpt-4o", messages=msgs, tools=tools, stream=True,
                                                     stream_options={"include_usage": True}, extra_headers=headers):
            for c in chunk.choices:
                for tc in c.delta.tool_calls or []:
                    cid = tc.id or cid
                    args += (tc.function.arguments or "") if tc.function else ""
    else:
        r = client.chat.completions.create(model="gpt-4o", messages=msgs, tools=tools, extra_headers=headers)
        tc = r.choices[0].message.tool_calls[0]
        cid, args = tc.id, tc.function.arguments
    cmd = json.loads(args)["command"]
    return cid, cmd, lambda out: client.chat.completions.create(
        model="gpt-4o", tools=tools,
        messages=msgs + [{"role": "assistant", "tool_calls": [{"id": cid, "type": "function",
                                                               "function": {"name": "bash", "arguments": args}}]},
                         {"role": "tool", "tool_call_id": cid, "content": out}])


def ask_responses(a, headers):
    client = openai.OpenAI(base_url=a.base + "/v1", api_key="sk-mock", http_client=httpx.Client(verify=a.ca))
    tools = [{"type": "function", "name": "bash", "description": BASH["description"], "parameters": BASH["schema"]}]
    if a.stream:
        item = None
        for ev in client.responses.create(model="gpt-5", input="clean up the build", tools=tools, stream=True,
                                          extra_headers=headers):
            if ev.type == "response.output_item.done" and ev.item.type == "function_call":
                item = ev.item
    else:
        r = client.responses.create(model="gpt-5", input="clean up the build", tools=tools, extra_headers=headers)
        item = next(o for o in r.output if o.type == "function_call")
    cmd = json.loads(item.arguments)["command"]
    return item.call_id, cmd, lambda out: client.responses.create(
        model="gpt-5", tools=tools, input=[{"type": "function_call_output", "call_id": item.call_id, "output": out}])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--api", required=True, choices=["anthropic", "openai_chat", "openai_responses"])
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--command", required=True)
    ap.add_argument("--call-id", required=True)
    ap.add_argument("--own")
    a = ap.parse_args()
    headers = {"x-mock-tool-call": a.command, "x-mock-tool-id": a.call_id}
    ask = {"anthropic": ask_anthropic, "openai_chat": ask_chat, "openai_responses": ask_responses}[a.api]
    cid, cmd, reply = ask(a, headers)
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    reply(out.stdout + out.stderr)
    if a.own:
        subprocess.run(["bash", "-c", a.own])
    print(json.dumps({"call_id": cid, "ran": cmd}), flush=True)


if __name__ == "__main__":
    main()
