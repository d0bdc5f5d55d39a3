#!/usr/bin/env python3
"""Drives the real `openai` and `anthropic` SDKs (PyPI) against the mock server, streaming and
not, and prints one JSON object per call: the usage the server reported (its
`x-mock-usage-normalised` header) and the raw usage the SDK parsed.

Usage: client_sdk.py --base https://127.0.0.1:8443 --ca ca.pem [--encoding gzip]
"""

import argparse
import json

import anthropic
import openai

try:  # newer SDKs ship their HTTP client as `httpx2`; older ones use `httpx`
    import httpx2 as httpx  # type: ignore
except ImportError:
    import httpx  # type: ignore


def cases(a):
    ua = "input=120,output=45,cache_read=30,cache_write=10"
    uo = "input=200,output=60,cache_read=1000,reasoning=25"
    extra = {"x-mock-encoding": a.encoding} if a.encoding else {}
    ant = anthropic.Anthropic(base_url=a.base, api_key="sk-mock", http_client=httpx.Client(verify=a.ca))
    oai = openai.OpenAI(base_url=a.base + "/v1", api_key="sk-mock", http_client=httpx.Client(verify=a.ca))
    msgs = [{"role": "user", "content": "Hello"}]

    raw = ant.messages.with_raw_response.create(model="claude-sonnet-4-5", max_tokens=64, messages=msgs,
                                                extra_headers={"x-mock-usage": ua, **extra})
    yield "anthropic", False, raw.headers, raw.parse().usage.model_dump()

    raw = ant.messages.with_raw_response.create(model="claude-sonnet-4-5", max_tokens=64, messages=msgs, stream=True,
                                                extra_headers={"x-mock-usage": ua, **extra})
    usage = {}
    for ev in raw.parse():
        if ev.type == "message_start":
            usage = ev.message.usage.model_dump()
        elif ev.type == "message_delta":
            usage.update({k: v for k, v in ev.usage.model_dump().items() if v is not None})
    yield "anthropic", True, raw.headers, usage

    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o", messages=msgs, extra_headers={"x-mock-usage": uo, **extra})
    yield "openai_chat", False, raw.headers, raw.parse().usage.model_dump()

    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o", messages=msgs, stream=True,
                                                        stream_options={"include_usage": True},
                                                        extra_headers={"x-mock-usage": uo, **extra})
    usage = None
    for chunk in raw.parse():
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
    yield "openai_chat", True, raw.headers, usage

    raw = oai.responses.with_raw_response.create(model="gpt-5", input="Hello", extra_headers={"x-mock-usage": uo, **extra})
    yield "openai_responses", False, raw.headers, raw.parse().usage.model_dump()

    raw = oai.responses.with_raw_response.create(model="gpt-5", input="Hello", stream=True,
                                                 extra_headers={"x-mock-usage": uo, **extra})
    usage = None
    for ev in raw.parse():
        if ev.type == "response.completed":
            usage = ev.response.usage.model_dump()
    yield "openai_responses", True, raw.headers, usage


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--encoding", default="")
    a = ap.parse_args()
    for provider, streamed, headers, sdk_usage in cases(a):
        print(json.dumps({
            "client": "python-sdk",
            "provider": provider,
            "streamed": streamed,
            "encoding": headers.get("content-encoding"),
            "usage": json.loads(headers["x-mock-usage-normalised"]),
            "sdk_usage": sdk_usage,
        }), flush=True)


if __name__ == "__main__":
    main()
