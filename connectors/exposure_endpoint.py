"""HTTP endpoint that replaces the desk's exposure book at run time.

``PUT /exposure`` with ``Authorization: Bearer <token>`` (the token from ``[desk]
token_env``, as for the risk feed) and the new book as the body (the format of the file
``[desk] exposure``: TOML, or CSV when that file ends in ``.csv``). Answers:

- 200 ``{"positions": N, "orders": M}``: the book is checked, written over the file
  (atomically) and in force from the next second;
- 400 ``{"error": "book.toml:7: position 2: size -3.0 must be > 0"}``: refused, the previous
  book stays in force;
- 401 without the right token, 404 for another path, 413 for a body over 1 MB.

``GET /exposure`` (same token) answers the book in force and the last error, if any.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cascadewatch.connectors.exposure import ExposureError, ExposureFile

log = logging.getLogger("cascadewatch.exposure")
MAX_BODY = 1_000_000


class ExposureEndpoint:
    """The endpoint in a thread: :meth:`start`, then :meth:`stop`; ``port`` is the bound port."""

    def __init__(self, exposure: ExposureFile, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.exposure = exposure
        self._token = token.encode()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                endpoint._handle(self, replace=True)

            def do_GET(self) -> None:
                endpoint._handle(self, replace=False)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.2,), name="exposure", daemon=True)

    def start(self) -> ExposureEndpoint:
        """Serve in a background thread."""
        self._thread.start()
        log.info("exposure endpoint listening on port %d", self.port)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def _authorized(self, request: BaseHTTPRequestHandler) -> bool:
        scheme, _, credential = (request.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), self._token)

    def _handle(self, request: BaseHTTPRequestHandler, replace: bool) -> None:
        if request.path.split("?", 1)[0] != "/exposure":
            return _answer(request, 404, {"error": "not found: use /exposure"})
        if not self._authorized(request):
            return _answer(request, 401, {"error": "unauthorized: send Authorization: Bearer <token>"})
        if not replace:
            book = self.exposure.current()
            return _answer(
                request,
                200,
                {
                    "positions": [asdict(p) for p in book.positions],
                    "orders": [asdict(o) for o in book.orders],
                    "error": self.exposure.error,
                },
            )
        length = int(request.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return _answer(request, 413, {"error": f"the book is over {MAX_BODY} bytes"})
        try:
            text = request.rfile.read(length).decode("utf-8")
            book = self.exposure.replace(text)
        except (ExposureError, UnicodeDecodeError) as exc:
            log.error("exposure replacement refused, the previous book stays in force: %s", exc)
            return _answer(request, 400, {"error": str(exc)})
        return _answer(request, 200, {"positions": len(book.positions), "orders": len(book.orders)})


def _answer(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)
