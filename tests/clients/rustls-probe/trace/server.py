import http.server, ssl, sys
port, maxv = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("content-length", 0)); body = self.rfile.read(n)
        out = b'{"usage":{"input_tokens":12,"output_tokens":34},"echo_len":%d}' % len(body)
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out))); self.end_headers(); self.wfile.write(out)
    do_GET = do_POST
    def log_message(self, *a): pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain("cert.pem", "key.pem")
if maxv == "1.2": ctx.maximum_version = ssl.TLSVersion.TLSv1_2
s = http.server.ThreadingHTTPServer(("127.0.0.1", port), H); s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
