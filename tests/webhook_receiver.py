"""A webhook receiver for the tests, run as its own process:

    python tests/webhook_receiver.py --log requests.jsonl --plan '{"/flaky": [{"status": 500}, {"status": 200}]}'

Listens on 127.0.0.1 (an ephemeral port, printed as ``PORT <n>`` once ready), appends every request
it gets to the log as one JSON line (path, headers, body, time) before answering, and answers each
path by its plan: the n-th request gets the n-th entry (``status``, optional ``headers``, optional
``sleep`` seconds before answering); the last entry repeats. Paths without a plan get 200.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--plan", default="{}")
    args = parser.parse_args()
    plan: dict[str, list[dict]] = json.loads(args.plan)
    seen: dict[str, int] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            path = self.path.split("?")[0]
            with lock:
                n = seen.get(path, 0)
                seen[path] = n + 1
                with open(args.log, "a") as log:
                    log.write(
                        json.dumps(
                            {
                                "path": path,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body": body.decode(),
                                "at": time.time(),
                            }
                        )
                        + "\n"
                    )
            steps = plan.get(path) or [{"status": 200}]
            step = steps[min(n, len(steps) - 1)]
            if step.get("sleep"):
                time.sleep(step["sleep"])
            self.send_response(step.get("status", 200))
            for name, value in (step.get("headers") or {}).items():
                self.send_header(name, value)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
