//! Sans-IO protocol decoders: HTTP/1.1, SSE, content encodings (issue 3); HTTP/2, WebSocket (issue 5).
