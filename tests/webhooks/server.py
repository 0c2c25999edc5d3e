#!/usr/bin/env python3
"""A small HTTPS admission webhook for skiff's end-to-end tests.

    server.py CERT KEY LOG

Listens on 127.0.0.1 on a free port and prints `listening PORT`. Every
AdmissionReview it receives is appended to LOG as one JSON line.

- POST /validate: refuses objects labelled deny=yes (403, with a message);
  allows objects labelled warn=yes with a warning; allows the rest.
- POST /mutate: allows, adding the label mutated-by=skiff-webhook with a
  JSONPatch.
- POST /slow: answers after 5 seconds (for timeouts).
"""

import base64
import json
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CERT, KEY, LOG = sys.argv[1], sys.argv[2], sys.argv[3]


def labels_of(obj):
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        review = json.loads(self.rfile.read(length))
        request = review["request"]
        with open(LOG, "a") as f:
            f.write(json.dumps({"path": self.path, "request": request}) + "\n")
        response = {"uid": request["uid"], "allowed": True}
        path = self.path.split("?")[0]
        obj = request.get("object") or request.get("oldObject")
        labels = labels_of(obj)
        name = (obj or {}).get("metadata", {}).get("name", "")
        if path == "/validate":
            if labels.get("deny") == "yes":
                response["allowed"] = False
                response["status"] = {
                    "code": 403,
                    "message": f"{request['resource']['resource']} labelled deny=yes are not allowed",
                }
            elif labels.get("warn") == "yes":
                response["warnings"] = [f"{name} is labelled warn=yes"]
        elif path == "/mutate":
            if "labels" in (obj or {}).get("metadata", {}):
                ops = [{"op": "add", "path": "/metadata/labels/mutated-by", "value": "skiff-webhook"}]
            else:
                ops = [{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "skiff-webhook"}}]
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        elif path == "/slow":
            time.sleep(5)
        body = json.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
