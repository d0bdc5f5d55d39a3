#!/usr/bin/env node
// Drives the mock server with node's own fetch (undici) over HTTPS, streaming and not, and
// prints one JSON object per call with the usage the server reported. Node's fetch decodes
// gzip/deflate/br itself. Trust the mock's CA with NODE_EXTRA_CA_CERTS=ca.pem.
//
// Usage: NODE_EXTRA_CA_CERTS=ca.pem node client_fetch.mjs https://127.0.0.1:8443 [encoding]

const base = process.argv[2];
const encoding = process.argv[3] || "";
if (!base) {
  console.error("usage: client_fetch.mjs BASE_URL [encoding]");
  process.exit(2);
}

// A program's very first milliseconds can precede guard attaching to its binary (a documented
// limit); the tests ask for a short pause before the first call.
await new Promise((r) => setTimeout(r, Number(process.env.MOCK_CLIENT_DELAY_MS || 0)));

const calls = [
  ["anthropic", false, "/v1/messages", { model: "claude-sonnet-4-5", max_tokens: 64, messages: [{ role: "user", content: "Hi" }] }],
  ["anthropic", true, "/v1/messages", { model: "claude-sonnet-4-5", max_tokens: 64, stream: true, messages: [{ role: "user", content: "Hi" }] }],
  ["openai_chat", false, "/v1/chat/completions", { model: "gpt-4o", messages: [{ role: "user", content: "Hi" }] }],
  ["openai_chat", true, "/v1/chat/completions", { model: "gpt-4o", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "Hi" }] }],
  ["openai_responses", true, "/v1/responses", { model: "gpt-5", input: "Hi", stream: true }],
  ["gemini", false, "/v1beta/models/gemini-2.5-pro:generateContent", { contents: [{ parts: [{ text: "Hi" }] }] }],
  ["gemini", true, "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", { contents: [{ parts: [{ text: "Hi" }] }] }],
  ["gemini", true, "/v1beta/models/gemini-2.5-pro:streamGenerateContent", { contents: [{ parts: [{ text: "Hi" }] }] }],
];

for (const [provider, streamed, path, body] of calls) {
  const headers = { "content-type": "application/json", "x-mock-usage": "input=300,output=40,cache_read=100,reasoning=12" };
  if (encoding) headers["x-mock-encoding"] = encoding;
  const res = await fetch(base + path, { method: "POST", headers, body: JSON.stringify(body) });
  // Read the body to the end, piece by piece, as a streaming client would.
  const reader = res.body.getReader();
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.length;
  }
  console.log(JSON.stringify({
    client: "node-fetch",
    provider,
    streamed,
    status: res.status,
    encoding: res.headers.get("content-encoding"),
    inference: true,
    usage: JSON.parse(res.headers.get("x-mock-usage-normalised")),
    body_bytes: bytes,
  }));
}

// Calls that are not inference: guard must see them and never count their tokens.
for (const [provider, method, path, body] of [
  ["anthropic", "POST", "/v1/messages/count_tokens", { model: "claude-sonnet-4-5", messages: [{ role: "user", content: "Hi" }] }],
  ["openai_chat", "GET", "/v1/models", undefined],
]) {
  const res = await fetch(base + path, { method, headers: { "content-type": "application/json" }, body: body && JSON.stringify(body) });
  await res.arrayBuffer();
  console.log(JSON.stringify({ client: "node-fetch", provider, streamed: false, status: res.status, inference: false, usage: null }));
}
