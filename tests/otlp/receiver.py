#!/usr/bin/env python3
"""A real OTLP receiver for guard's tests, on the official protobuf definitions
(opentelemetry-proto) and grpcio: OTLP/HTTP (protobuf bodies on /v1/metrics, /v1/traces,
/v1/logs) and OTLP/gRPC (the three collector services), on 127.0.0.1.

Every export request is written to OUT as one JSON line: {"transport", "signal", "headers",
"request"} where "request" is the protobuf message as JSON (google.protobuf.json_format).
Prints {"http": PORT, "grpc": PORT} on stdout once both listen. --delay-ms holds every reply
(a slow collector)."""

import argparse
import json
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

SIGNALS = {
    "/v1/metrics": ("metrics", metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse),
    "/v1/traces": ("traces", trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "/v1/logs": ("logs", logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}

LOCK = threading.Lock()


def record(out, transport, signal, headers, msg):
    line = json.dumps({"transport": transport, "signal": signal, "headers": headers, "request": MessageToDict(msg)})
    with LOCK:
        out.write(line + "\n")
        out.flush()


def http_handler(out, delay):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            sig = SIGNALS.get(self.path)
            if sig is None:
                self.send_error(404)
                return
            name, req_t, resp_t = sig
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            msg = req_t()
            try:
                msg.ParseFromString(body)
            except Exception as e:  # a malformed body is the exporter's bug: say so
                self.send_error(400, str(e))
                return
            if self.headers.get("Content-Type") != "application/x-protobuf":
                self.send_error(415, "not application/x-protobuf")
                return
            time.sleep(delay)
            record(out, "http", name, {k.lower(): v for k, v in self.headers.items()}, msg)
            data = resp_t().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


def grpc_services(out, delay):
    def meta(ctx):
        return {k: v for k, v in ctx.invocation_metadata()}

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request, context):
            time.sleep(delay)
            record(out, "grpc", "metrics", meta(context), request)
            return metrics_service_pb2.ExportMetricsServiceResponse()

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            time.sleep(delay)
            record(out, "grpc", "traces", meta(context), request)
            return trace_service_pb2.ExportTraceServiceResponse()

    class Logs(logs_service_pb2_grpc.LogsServiceServicer):
        def Export(self, request, context):
            time.sleep(delay)
            record(out, "grpc", "logs", meta(context), request)
            return logs_service_pb2.ExportLogsServiceResponse()

    return Metrics(), Traces(), Logs()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--delay-ms", type=int, default=0)
    args = ap.parse_args()
    out = open(args.out, "a", encoding="utf-8")
    delay = args.delay_ms / 1000
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), http_handler(out, delay))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    m, t, l = grpc_services(out, delay)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(m, server)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(t, server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(l, server)
    gport = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"http": httpd.server_address[1], "grpc": gport}), flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
