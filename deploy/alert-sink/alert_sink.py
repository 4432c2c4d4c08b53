"""Stand-in for the pager and the ticket queue of alerts/alertmanager.example.yml.

That file sends severity=page to http://127.0.0.1:9095/page and
severity=ticket to http://127.0.0.1:9096/ticket. In the compose demo this
runs in the Alertmanager container's network namespace, so those loopback
addresses reach it, and prints one line per notification:

    page firing PostgresDown instance=exporter:9432 ...

Standard library only; answers 200 to every POST so Alertmanager counts the
notification as delivered.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORTS = {9095: "page", 9096: "ticket"}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        receiver = PORTS.get(self.server.server_address[1], "?")
        try:
            payload = json.loads(body)
            for alert in payload.get("alerts", []):
                labels = alert.get("labels", {})
                rest = " ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
                print(f"{receiver} {alert.get('status')} {labels.get('alertname')} {rest}", flush=True)
        except (ValueError, AttributeError) as err:
            print(f"{receiver} unreadable notification ({err}): {body[:200]!r}", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # one line per alert above is enough


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    servers = [ThreadingHTTPServer((host, port), Handler) for port in PORTS]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"alert sink: page on {host}:9095, ticket on {host}:9096", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
