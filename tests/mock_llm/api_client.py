#!/usr/bin/env python3
"""One HTTPS request with the standard library (http.client through the system OpenSSL, as
boto3's urllib3 and the Kubernetes Python client send theirs), for the API-call tests
(tests/tests/api_calls.rs).

Usage: api_client.py PORT METHOD PATH HOST [FORM_BODY]

Connects to 127.0.0.1:PORT (the mock's certificate is not checked), sends METHOD PATH with
`Host: HOST` and, if given, FORM_BODY as application/x-www-form-urlencoded, prints the status.
"""

import http.client
import ssl
import sys


def main():
    port, method, path, host = sys.argv[1:5]
    body = sys.argv[5].encode() if len(sys.argv) > 5 else None
    conn = http.client.HTTPSConnection("127.0.0.1", int(port), context=ssl._create_unverified_context(), timeout=30)
    headers = {"Host": host, "Authorization": "Bearer mock-token-never-logged"}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    print(conn.getresponse().status)


if __name__ == "__main__":
    main()
