"""Fake PagerDuty, Slack and webhook servers on 127.0.0.1 for the alert tests.

Each answers like the real service (bodies and headers as documented by PagerDuty Events
API v2 and Slack incoming webhooks) unless a test scripts other answers with
:meth:`FakeServer.script`. Every request is recorded with its exact body and headers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (a timeout when longer than the client's)."""


class FakeServer:
    """An HTTP server in a thread; subclasses define :meth:`default_answer`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.hold: dict[int, float] = {}
        """Request number (1-based) -> seconds to hold it before answering."""
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self.received = threading.Condition(self._lock)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                recorded = Recorded(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                )
                answer, hold = fake._answer_for(recorded)
                if answer.delay or hold:
                    time.sleep(answer.delay + hold)
                try:
                    self.send_response(answer.status)
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def _answer_for(self, recorded: Recorded) -> tuple[Answer, float]:
        with self.received:
            self.requests.append(recorded)
            hold = self.hold.get(len(self.requests), 0.0)
            answer = self._script.popleft() if self._script else None
            self.received.notify_all()
        return (answer if answer is not None else self.default_answer(recorded)), hold

    def default_answer(self, recorded: Recorded) -> Answer:
        return Answer(200, b"ok")

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script.extend(answers)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        with self.received:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
                self.received.wait(left)
            return list(self.requests)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def pd_accepted(dedup_key: str) -> Answer:
    body = {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
    return Answer(202, json.dumps(body).encode(), {"Content-Type": "application/json"})


PD_INVALID = Answer(
    400,
    json.dumps(
        {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"],
        }
    ).encode(),
    {"Content-Type": "application/json"},
)
PD_THROTTLED = Answer(429, b"", {"Content-Type": "application/json"})


class FakePagerDuty(FakeServer):
    """PagerDuty Events API v2: 202 and dedup (one open incident per dedup_key).

    ``refuse`` holds ``(dedup_key, event_action)`` pairs answered 400 ``invalid event`` once
    each (the event then changes nothing, as on PagerDuty).
    """

    def __init__(self) -> None:
        super().__init__()
        self.open: set[str] = set()
        self.incidents_opened: list[str] = []
        self.resolved: list[str] = []
        self.refuse: set[tuple[str, str]] = set()

    def default_answer(self, recorded: Recorded) -> Answer:
        event = recorded.json()
        key = event["dedup_key"]
        with self._lock:
            if (key, event["event_action"]) in self.refuse:
                self.refuse.discard((key, event["event_action"]))
                return PD_INVALID
            if event["event_action"] == "trigger" and key not in self.open:
                self.open.add(key)
                self.incidents_opened.append(key)
            elif event["event_action"] == "resolve" and key in self.open:
                self.open.discard(key)
                self.resolved.append(key)
        return pd_accepted(key)


SLACK_OK = Answer(200, b"ok", {"Content-Type": "text/html"})
SLACK_INVALID = Answer(400, b"invalid_payload", {"Content-Type": "text/html"})
SLACK_NO_SERVICE = Answer(404, b"no_service", {"Content-Type": "text/html"})


def slack_rate_limited(retry_after: int) -> Answer:
    return Answer(429, b"rate_limited", {"Retry-After": str(retry_after), "Content-Type": "text/html"})


class FakeSlack(FakeServer):
    def default_answer(self, recorded: Recorded) -> Answer:
        return SLACK_OK


class FakeWebhook(FakeServer):
    """Verifies ``X-Signature`` (HMAC-SHA256 hex of the body); 401 when it does not match."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret.encode()
        self.verified: list[bool] = []

    def default_answer(self, recorded: Recorded) -> Answer:
        expected = hmac.new(self.secret, recorded.body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(expected, recorded.headers.get("x-signature", ""))
        with self._lock:
            self.verified.append(ok)
        return Answer(204) if ok else Answer(401, b'{"error":"bad signature"}')


def make_alert(
    asset: str = "BTC-USDT",
    direction: str = "down",
    action: str = "trigger",
    severity: str = "critical",
    ts: int = 1_700_000_000_000,
    **extra: Any,
) -> dict[str, Any]:
    """An alert dict shaped like the alert policy's (detectors/policy.py), ids derived from content."""
    key = f"{asset}:cascade:{direction}"
    alert_id = hashlib.sha1(f"{key}|{ts}|{action}|{severity}".encode()).hexdigest()[:16]
    alert = {
        "type": "alert",
        "id": alert_id,
        "dedup_key": key,
        "action": action,
        "severity": severity,
        "kind": "cascade",
        "asset": asset,
        "direction": direction,
        "ts": ts,
        "summary": f"{asset} {direction.upper()}: 72% cascade risk in 5m · $48.0M longs at 63,000 (-156 bps below)",
        "opened_ts": ts,
        "probability": 0.72,
        "price": 64000.5,
        "level": 63000.0,
        "distance_bps": -156.3,
        "cluster_usd": 48_000_000.0,
        "notional_at_risk_usd": 52_000_000.0,
        "depth_usd": 4_200_000.0,
        "depth_ratio": 0.41,
        "reach_usd": 91_000_000.0,
        "reach_bps": 310.0,
        "branching": 0.87,
        "liq_usd_60s": 6_200_000.0,
        "cascade": None,
        "venues": ["binance-usdm", "okx-swap"],
    }
    alert.update(extra)
    return alert


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


def enqueue(config: Any, alerts: list[dict[str, Any]]) -> None:
    """Put ``alerts`` into the outbox of ``config`` (an ``AlertsConfig``), routed by its rules."""
    from cascadewatch.connectors.alerts.outbox import Outbox
    from cascadewatch.connectors.alerts.routing import Router

    with Outbox(config.outbox) as outbox:
        outbox.enqueue(alerts, Router(config.destinations))


def deliver(config: Any, alerts: list[dict[str, Any]], timeout: float = 10.0) -> Any:
    """Enqueue ``alerts``, run a delivery worker until nothing is pending; return the outbox."""
    from cascadewatch.connectors.alerts.outbox import Outbox
    from cascadewatch.connectors.alerts.worker import DeliveryWorker

    enqueue(config, alerts)
    worker = DeliveryWorker(config, seed=7).start()
    try:
        wait_until(lambda: worker.unfinished() == 0, timeout)
    finally:
        worker.stop()
    return Outbox(config.outbox)


def alerts_cli(argv: list[str]) -> tuple[int, str]:
    """Run ``cascadewatch alerts ...`` (or ``tail``) in process: exit code and the console text."""
    import argparse

    from rich.console import Console

    from cascadewatch.pipelines.cli.alerts import add_commands, run

    parser = argparse.ArgumentParser(prog="cascadewatch")
    add_commands(parser.add_subparsers(dest="command", required=True))
    console = Console(record=True, width=300, color_system=None)
    code = run(parser.parse_args(argv), console)
    return code, console.export_text()


# ------------------------------------------------------------------ Telegram and Discord

MARKDOWN_V2_RESERVED = set("_*[]()~`>#+-=|{}.!")


def parse_markdown_v2(text: str) -> str:
    """The plain text of a MarkdownV2 message, as Telegram parses it; ``ValueError`` with
    Telegram's own wording where Telegram refuses it (a reserved character not escaped, an
    entity not closed). Handles the entities cascadewatch uses: bold, italic, underline,
    strikethrough, spoiler, inline code."""
    out: list[str] = []
    stack: list[tuple[str, int]] = []
    i = 0
    while i < len(text):
        char = text[i]
        in_code = bool(stack) and stack[-1][0] == "`"
        if char == "\\":
            if i + 1 >= len(text):
                raise ValueError("Can't find end of the entity")  # a lone backslash at the end
            out.append(text[i + 1])
            i += 2
            continue
        if in_code:
            if char == "`":
                stack.pop()
            else:
                out.append(char)
            i += 1
            continue
        token = "__" if text.startswith("__", i) else "||" if text.startswith("||", i) else char
        if token in ("*", "_", "__", "~", "||", "`"):
            if stack and stack[-1][0] == token:
                stack.pop()
            else:
                stack.append((token, len(text[:i].encode("utf-16-le")) // 2))
            i += len(token)
            continue
        if char in MARKDOWN_V2_RESERVED:
            raise ValueError(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")
        out.append(char)
        i += 1
    if stack:
        raise ValueError(f"Can't find end of the entity starting at byte offset {stack[-1][1]}")
    return "".join(out)


def telegram_answer(status: int, description: str, **parameters: Any) -> Answer:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Answer(status, json.dumps(body).encode(), {"Content-Type": "application/json"})


class FakeTelegram(FakeServer):
    """Bot API ``sendMessage`` for one bot token and one chat, parsing MarkdownV2 as Telegram does.

    Wrong token: 401 ``Unauthorized``; unknown method: 404; unknown chat: 400 ``chat not
    found``; bad MarkdownV2: 400 ``can't parse entities: ...``. ``messages`` holds the plain
    text of each accepted message.
    """

    def __init__(self, token: str, chat_id: str) -> None:
        super().__init__()
        self.token = token
        self.chat_id = chat_id
        self.messages: list[str] = []

    def default_answer(self, recorded: Recorded) -> Answer:
        prefix = f"/bot{self.token}/"
        if not recorded.path.startswith("/bot"):
            return telegram_answer(404, "Not Found")
        if not recorded.path.startswith(prefix):
            return telegram_answer(401, "Unauthorized")
        if recorded.path[len(prefix) :] != "sendMessage":
            return telegram_answer(404, "Not Found: method not found")
        body = recorded.json()
        if str(body.get("chat_id")) != self.chat_id:
            return telegram_answer(400, "Bad Request: chat not found")
        try:
            plain = parse_markdown_v2(body["text"]) if body.get("parse_mode") == "MarkdownV2" else body["text"]
        except ValueError as exc:
            return telegram_answer(400, f"Bad Request: can't parse entities: {exc}")
        with self._lock:
            self.messages.append(plain)
            message_id = len(self.messages)
        result = {"message_id": message_id, "chat": {"id": self.chat_id}, "date": 1700000000, "text": plain}
        return Answer(200, json.dumps({"ok": True, "result": result}).encode(), {"Content-Type": "application/json"})


def telegram_too_many(retry_after: int) -> Answer:
    return telegram_answer(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


def discord_rate_limited(retry_after: float) -> Answer:
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
    headers = {
        "Content-Type": "application/json",
        "Retry-After": str(max(1, round(retry_after))),
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Scope": "user",
    }
    return Answer(429, json.dumps(body).encode(), headers)


DISCORD_UNKNOWN_WEBHOOK = Answer(
    404, json.dumps({"message": "Unknown Webhook", "code": 10015}).encode(), {"Content-Type": "application/json"}
)


class FakeDiscord(FakeServer):
    """A Discord webhook at ``path``: 204 for a valid message; 404 ``Unknown Webhook`` elsewhere;
    400 ``Invalid Form Body`` (code 50035) past Discord's embed limits."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def default_answer(self, recorded: Recorded) -> Answer:
        if recorded.path != self.path:
            return DISCORD_UNKNOWN_WEBHOOK
        problem = discord_problem(recorded.json())
        if problem:
            body = {"message": "Invalid Form Body", "code": 50035, "errors": {"embeds": {"_errors": [problem]}}}
            return Answer(400, json.dumps(body).encode(), {"Content-Type": "application/json"})
        return Answer(204)


def discord_problem(body: dict[str, Any]) -> str | None:
    """What Discord would refuse in a webhook body (its documented embed limits), or None."""
    embeds = body.get("embeds", [])
    if len(embeds) > 10:
        return "Must be 10 or fewer in length."
    total = 0
    for embed in embeds:
        colour = embed.get("color", 0)
        if not isinstance(colour, int) or not 0 <= colour <= 0xFFFFFF:
            return "color: Int value should be less than or equal to 16777215."
        fields = embed.get("fields", [])
        if len(fields) > 25:
            return "fields: Must be 25 or fewer in length."
        texts = [embed.get("title", ""), embed.get("description", ""), embed.get("footer", {}).get("text", "")]
        if len(texts[0]) > 256 or len(texts[1]) > 4096 or len(texts[2]) > 2048:
            return "Must be 4096 or fewer in length."
        for f in fields:
            if not f.get("name") or not f.get("value") or len(f["name"]) > 256 or len(f["value"]) > 1024:
                return "fields: name and value required, at most 256 and 1024 in length."
            texts += [f["name"], f["value"]]
        total += sum(len(t) for t in texts)
    if total > 6000:
        return "Embed size exceeds maximum size of 6000"
    return None
