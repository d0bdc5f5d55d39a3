#!/usr/bin/env python3
"""An MCP server and client on the official `mcp` package (PyPI), over Streamable HTTP in TLS.

  mcp_pair.py server --port P --cert C --key K   serves /mcp with tools `add` and `fail`
                                                  (prints "ready" once it listens)
  mcp_pair.py client --url U --ca C              initializes, calls `add` then `fail`, prints
                                                  {"add": TEXT, "fail_is_error": BOOL}
"""

import argparse
import asyncio
import json
import sys


def server(a):
    import uvicorn
    from mcp.server.mcpserver import MCPServer

    srv = MCPServer("guard-test", log_level="ERROR")

    @srv.tool()
    def add(a: int, b: int) -> int:
        """Adds two numbers."""
        return a + b

    @srv.tool()
    def fail() -> str:
        """Always fails."""
        raise RuntimeError("this tool always fails")

    app = srv.streamable_http_app(json_response=a.json)
    config = uvicorn.Config(app, host="127.0.0.1", port=a.port, ssl_certfile=a.cert, ssl_keyfile=a.key, log_level="warning")
    s = uvicorn.Server(config)

    async def run():
        task = asyncio.create_task(s.serve())
        while not s.started:
            await asyncio.sleep(0.05)
        print("ready", flush=True)
        await task

    asyncio.run(run())


async def client(a):
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(verify=a.ca) as http:
        async with streamable_http_client(a.url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                added = await session.call_tool("add", {"a": 2, "b": 3})
                failed = await session.call_tool("fail", {})
    text = next((c.text for c in added.content if getattr(c, "text", None) is not None), None)
    print(json.dumps({"add": text, "fail_is_error": bool(failed.is_error)}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--json", action="store_true", help="JSON replies instead of SSE streams")
    c = sub.add_parser("client")
    c.add_argument("--url", required=True)
    c.add_argument("--ca", required=True)
    a = ap.parse_args()
    if a.cmd == "server":
        server(a)
    else:
        asyncio.run(client(a))


if __name__ == "__main__":
    sys.exit(main())
