"""A real webhook receiver for tests: an HTTPS server on 127.0.0.1 with a certificate for
"localhost" from a throw-away CA (trustme), which verifies Standard Webhooks signatures with
the ``standardwebhooks`` library and can answer errors on purpose.

    with Receiver(secret=endpoint.secret, plan=[500, 500, 500]) as receiver, receiver.trusted():
        ...  # the portal delivers to receiver.url

``trusted()`` switches the private-address guard off (the receiver is on loopback) and makes
the portal trust the receiver's CA; nothing else changes.
"""

import json
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme
from django.test import override_settings
from standardwebhooks import Webhook, WebhookVerificationError


class Receiver:
    def __init__(self, *, secret: str = "", plan=(), cert_hosts=("localhost",), redirect_to=""):
        self.secret, self.plan, self.redirect_to = secret, list(plan), redirect_to
        self.requests: list[dict] = []  # every request, in order
        self._lock = threading.Lock()
        self.ca = trustme.CA()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert(*cert_hosts).configure_cert(context)
        self._folder = tempfile.TemporaryDirectory(prefix="webhook-receiver-")
        self.ca_file = str(Path(self._folder.name) / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"https://localhost:{self.port}/hooks/security"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = dict(self.headers.items())
                verified, error = None, ""
                if receiver.secret:
                    try:
                        verified = Webhook(receiver.secret).verify(body, headers)
                    except WebhookVerificationError as exc:
                        error = str(exc)
                with receiver._lock:
                    status = 401 if error else (receiver.plan.pop(0) if receiver.plan else 200)
                    receiver.requests.append({"status": status, "headers": headers, "body": body,
                                              "json": json.loads(body), "verified": verified, "error": error,
                                              "path": self.path})
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
        self._folder.cleanup()

    def trusted(self):
        return override_settings(WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True, WEBHOOK_CA_BUNDLE=self.ca_file)

    def accepted(self) -> list[dict]:
        """The requests answered 2xx."""
        return [r for r in self.requests if 200 <= r["status"] < 300]

    def types(self) -> list[str]:
        return [r["json"].get("type") for r in self.accepted()]
