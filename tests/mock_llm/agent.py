#!/usr/bin/env python3
"""A stand-in coding agent for the attribution tests: one LLM call to the mock server (stdlib
HTTPS, so through the system OpenSSL), then a shell command, the way agents run tools.

Usage: agent.py BASE_URL CA_FILE SHELL_SCRIPT
Prints {"shell_pid": N} once the shell has finished.
"""

import json
import ssl
import subprocess
import sys
import urllib.request


def main():
    base, ca, script = sys.argv[1], sys.argv[2], sys.argv[3]
    ctx = ssl.create_default_context(cafile=ca)
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64,
                       "messages": [{"role": "user", "content": "clean up the build"}]}).encode()
    req = urllib.request.Request(base + "/v1/messages", data=body, headers={
        "content-type": "application/json", "x-api-key": "sk-ant-api03-mocksecretmocksecretmocksecret",
        "anthropic-version": "2023-06-01", "x-mock-usage": "input=11,output=7"})
    with urllib.request.urlopen(req, context=ctx) as r:
        r.read()
    shell = subprocess.Popen(["bash", "-c", script])
    shell.wait()
    print(json.dumps({"shell_pid": shell.pid}), flush=True)


if __name__ == "__main__":
    main()
