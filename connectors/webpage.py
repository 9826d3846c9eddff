"""The web risk page: static files served by the risk feed's own server, and the feed's token check.

The page (``connectors/web/``: HTML, CSS, plain JS modules and the vendored uPlot) holds no
data: it is served to anyone who can reach the port, and fetches nothing but the feed. The
data comes over the websocket, behind the same bearer token as every other feed client. A
browser cannot set an ``Authorization`` header on a websocket, so the page offers the token as
a subprotocol, ``cascadewatch.token.<hex of the token's UTF-8 bytes>`` beside
:data:`SUBPROTOCOL`; the server accepts either form and answers with :data:`SUBPROTOCOL` (the
token is never echoed).

Routes (plain HTTP ``GET`` on the feed's port, requests without ``Upgrade: websocket``):

- ``/`` (also ``/index.html``) and the files under ``web/``: the page, with its content type;
- ``/api/auth``: ``204`` when the request's ``Authorization: Bearer`` token is right (or none
  is configured), else ``401``: how the page tells a wrong token from a feed that is down;
- anything else: ``404``.
"""

from __future__ import annotations

import hmac
from functools import cache
from http import HTTPStatus
from importlib import resources

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

SUBPROTOCOL = "cascadewatch.v1"
"""The subprotocol the server selects when a client offers subprotocols (the page does)."""
TOKEN_PREFIX = "cascadewatch.token."
"""Prefix of the subprotocol that carries the token, hex-encoded."""

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
}
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    # the page loads nothing from elsewhere and connects only back to this server
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data:"
    ),
}


def web_file(name: str) -> bytes | None:
    """The bytes of ``web/<name>`` (package data), ``None`` if there is no such file.

    ``name`` is a relative path of plain segments (``app.js``, ``vendor/uPlot.iife.min.js``);
    anything else (``..``, an absolute path, a hidden file) is ``None``.
    """
    parts = name.split("/")
    if not name or any(not part or part.startswith(".") for part in parts):
        return None
    return _read(tuple(parts))


@cache
def _read(parts: tuple[str, ...]) -> bytes | None:
    node = resources.files("cascadewatch.connectors").joinpath("web", *parts)
    return node.read_bytes() if node.is_file() else None


def is_upgrade(request: Request) -> bool:
    """Whether ``request`` asks for a websocket (else it is a plain HTTP request for the page)."""
    return "websocket" in request.headers.get("Upgrade", "").lower()


def token_matches(request: Request, token: str) -> bool:
    """Whether ``request`` carries ``token``: ``Authorization: Bearer <token>`` or the token subprotocol."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), token.encode()):
        return True
    wanted = (TOKEN_PREFIX + token.encode().hex()).encode()
    offered = ",".join(request.headers.get_all("Sec-WebSocket-Protocol"))
    return any(hmac.compare_digest(p.strip().encode(), wanted) for p in offered.split(",") if p.strip())


def page_response(request: Request, token: str | None) -> Response:
    """The answer to a plain HTTP request on the feed's port (see the module's routes)."""
    path = request.path.split("?", 1)[0]
    if path == "/api/auth":
        if token is None or token_matches(request, token):
            return _response(HTTPStatus.NO_CONTENT, b"", ".txt")
        return _response(HTTPStatus.UNAUTHORIZED, b"a valid 'Authorization: Bearer <token>' is required\n", ".txt")
    name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/")
    body = web_file(name)
    if body is None:
        return _response(HTTPStatus.NOT_FOUND, b"not found\n", ".txt")
    return _response(HTTPStatus.OK, body, "." + name.rsplit(".", 1)[-1])


def _response(status: HTTPStatus, body: bytes, suffix: str) -> Response:
    headers = Headers(_HEADERS)
    headers["Content-Type"] = _TYPES.get(suffix, "application/octet-stream")
    headers["Content-Length"] = str(len(body))
    return Response(status.value, status.phrase, headers, body)
