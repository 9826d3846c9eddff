"""The durable alert outbox: SQLite in WAL mode.

An alert is written once, with one delivery row per destination it is routed to, in one
transaction, before anything is sent. Enqueueing is idempotent on the alert id (ids are
derived from content), so a replayed or resumed flow never enqueues an alert twice.

A delivery is ``pending`` (due at ``next_attempt_at``), ``inflight`` (claimed by the
delivery worker), ``delivered`` or ``failed`` (terminal, with the reason, visible in
``cascadewatch alerts status``). Deliveries to one destination with the same dedup key go
out in the order they were enqueued: a delivery waits while an earlier one of its dedup key
to that destination is pending or in flight (a resolve never overtakes a trigger still being
retried). A delivery that failed for good does not hold the later ones back; it is
*superseded* by them, and ``retry-failed`` does not resend it (see :meth:`Outbox.requeue_failed`),
so each destination ends in the state of the latest alert of each key.

A trigger is not sent again to a destination whose last delivery of its dedup key (failed ones
aside) is a trigger of the same or a higher severity: the incident is open there already. So
the per-second trigger that confirms a provisional cascade alert
(:mod:`cascadewatch.pipelines.steps.provisional`) does not page twice; it is stored, with no
delivery, and the resolve of the key still goes to the destinations the provisional one paged.

After a crash (even ``kill -9``) the rows claimed but not finished are still ``inflight``;
:meth:`Outbox.recover`, called by the one delivery worker that holds the outbox lock when
it starts, puts them back to ``pending``. So a restart sends what was pending, and at most
the deliveries that were in flight at the crash once more (PagerDuty deduplicates those on
their dedup key).
"""

from __future__ import annotations

import errno
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id          TEXT PRIMARY KEY,
    dedup_key   TEXT NOT NULL,
    action      TEXT NOT NULL,
    body        TEXT NOT NULL,
    enqueued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id        TEXT NOT NULL REFERENCES alerts(id),
    destination     TEXT NOT NULL,
    dedup_key       TEXT NOT NULL,
    action          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'inflight', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    updated_at      REAL NOT NULL,
    UNIQUE (alert_id, destination)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (destination, status, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_key ON deliveries (destination, dedup_key, status);
"""

STATUSES = ("pending", "inflight", "delivered", "failed")
SEVERITY_RANK = {"warning": 1, "critical": 2}
"""Severities in order; a trigger does not page where its key is open at the same or a higher one."""
SUPERSEDED = "superseded by alert"
"""Prefix of the reason of a failed delivery that a later one of its dedup key supersedes."""


@dataclass(frozen=True)
class Requeued:
    """What :meth:`Outbox.requeue_failed` did."""

    pending: int
    """Failed deliveries made pending again."""
    superseded: int
    """Failed deliveries left failed because a later delivery of their dedup key supersedes them."""


@dataclass(frozen=True)
class Delivery:
    """One alert to one destination, as claimed by the worker."""

    seq: int
    alert_id: str
    destination: str
    alert: dict[str, Any]
    attempts: int
    """Attempts including the one being made now."""


@dataclass(frozen=True)
class DeliveryRow:
    """A delivery as stored (for status listings)."""

    seq: int
    alert_id: str
    destination: str
    dedup_key: str
    action: str
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    updated_at: float


class Outbox:
    """The outbox at ``path`` (created if absent). Thread-safe: one connection, one lock."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = _open(self.path)

    @staticmethod
    def check(path: str | Path) -> None:
        """Open (creating if absent) and close the outbox at ``path``, or raise :class:`OutboxError`."""
        Outbox(path).close()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    def enqueue(
        self, alerts: Iterable[dict[str, Any]], route: Callable[[dict[str, Any]], Sequence[str]]
    ) -> list[tuple[str, list[str]]]:
        """Store ``alerts`` and their deliveries in one transaction.

        Returns ``(alert id, destinations)`` for each alert that was new.

        ``route(alert)`` names the destinations of an alert. A resolve goes to the
        destinations that got a trigger of its dedup key (when there are any), so a
        resolve follows its page even if routing changed in between. An alert whose id
        is already stored is skipped entirely.
        """
        now = self._clock()
        new: list[tuple[str, list[str]]] = []
        with self._transaction() as db:
            for alert in alerts:
                alert_id = str(alert["id"])
                key = str(alert.get("dedup_key", alert_id))
                action = str(alert.get("action", "trigger"))
                inserted = db.execute(
                    "INSERT OR IGNORE INTO alerts (id, dedup_key, action, body, enqueued_at) VALUES (?, ?, ?, ?, ?)",
                    (alert_id, key, action, json.dumps(alert, separators=(",", ":")), now),
                ).rowcount
                if not inserted:
                    continue
                destinations = list(dict.fromkeys(route(alert)))
                if action == "resolve":
                    paged = [
                        row[0]
                        for row in db.execute(
                            "SELECT DISTINCT destination FROM deliveries WHERE dedup_key = ? AND action = 'trigger'"
                            " ORDER BY destination",
                            (key,),
                        )
                    ]
                    if paged:
                        destinations = paged
                elif action == "trigger":
                    rank = SEVERITY_RANK.get(str(alert.get("severity")), 0)
                    destinations = [d for d in destinations if _open_rank(db, d, key) < rank]
                db.executemany(
                    "INSERT INTO deliveries (alert_id, destination, dedup_key, action, status, next_attempt_at,"
                    " updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    [(alert_id, dest, key, action, now, now) for dest in destinations],
                )
                new.append((alert_id, destinations))
        return new

    def claim(self, destination: str, limit: int = 1) -> list[Delivery]:
        """Claim up to ``limit`` due deliveries for ``destination``, oldest first.

        A delivery is skipped while an earlier one with the same dedup key to the same
        destination is still pending or in flight (order per alert stream).
        """
        now = self._clock()
        with self._transaction() as db:
            rows = db.execute(
                """
                SELECT d.seq, d.alert_id, a.body, d.attempts FROM deliveries d JOIN alerts a ON a.id = d.alert_id
                WHERE d.destination = ? AND d.status = 'pending' AND d.next_attempt_at <= ?
                  AND NOT EXISTS (
                    SELECT 1 FROM deliveries e
                    WHERE e.destination = d.destination AND e.dedup_key = d.dedup_key
                      AND e.seq < d.seq AND e.status IN ('pending', 'inflight'))
                ORDER BY d.seq LIMIT ?
                """,
                (destination, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE deliveries SET status = 'inflight', attempts = attempts + 1, updated_at = ? WHERE seq = ?",
                [(now, row[0]) for row in rows],
            )
        return [
            Delivery(seq, alert_id, destination, json.loads(body), attempts + 1)
            for seq, alert_id, body, attempts in rows
        ]

    def mark_delivered(self, seqs: Iterable[int]) -> None:
        """Mark the deliveries ``seqs`` delivered."""
        now = self._clock()
        with self._transaction() as db:
            db.executemany(
                "UPDATE deliveries SET status = 'delivered', last_error = NULL, updated_at = ? WHERE seq = ?",
                [(now, seq) for seq in seqs],
            )

    def mark_retry(self, seqs: Iterable[int], at: float, reason: str) -> None:
        """Back to pending, due at ``at`` (epoch seconds), remembering why."""
        now = self._clock()
        with self._transaction() as db:
            db.executemany(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, last_error = ?, updated_at = ?"
                " WHERE seq = ?",
                [(at, reason, now, seq) for seq in seqs],
            )

    def mark_failed(self, seqs: Iterable[int], reason: str) -> None:
        """Terminal failure (a 400, a bad key, too many attempts); kept with its reason."""
        now = self._clock()
        with self._transaction() as db:
            db.executemany(
                "UPDATE deliveries SET status = 'failed', last_error = ?, updated_at = ? WHERE seq = ?",
                [(reason, now, seq) for seq in seqs],
            )

    def recover(self, destinations: Iterable[str] | None = None) -> int:
        """Put deliveries left ``inflight`` by a dead worker back to pending; return how many.

        Only the worker holding the outbox lock may call this (see ``worker.OutboxLock``).
        """
        now = self._clock()
        with self._transaction() as db:
            if destinations is None:
                return db.execute(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?"
                    " WHERE status = 'inflight'",
                    (now, now),
                ).rowcount
            return sum(
                db.execute(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?"
                    " WHERE status = 'inflight' AND destination = ?",
                    (now, now, dest),
                ).rowcount
                for dest in destinations
            )

    def requeue_failed(self, destination: str | None = None) -> Requeued:
        """Make failed deliveries pending again (after fixing a key, say), unless superseded.

        A failed delivery is *superseded* when a later delivery of the same dedup key to the
        same destination exists (whatever its status): the later one carries the pipeline's
        newer state of that key, so resending the old one after it would leave the
        destination in a state the pipeline has left (an incident open that it resolved). A
        superseded delivery stays ``failed``, its reason prefixed with ``superseded by alert
        <id> (<action>)``, and is never resent.
        """
        now = self._clock()
        where: str = ""
        params: tuple[str, ...] = ()
        if destination is not None:
            where, params = " AND d.destination = ?", (destination,)
        with self._transaction() as db:
            failed = db.execute(
                f"""
                SELECT d.seq, d.last_error, (
                    SELECT e.alert_id || ' (' || e.action || ')' FROM deliveries e
                    WHERE e.destination = d.destination AND e.dedup_key = d.dedup_key AND e.seq > d.seq
                    ORDER BY e.seq DESC LIMIT 1)
                FROM deliveries d WHERE d.status = 'failed'{where} ORDER BY d.seq
                """,
                params,
            ).fetchall()
            requeue = [(now, now, seq) for seq, _, later in failed if later is None]
            supersede = [
                (f"{SUPERSEDED} {later}: {reason or ''}", now, seq)
                for seq, reason, later in failed
                if later is not None and not (reason or "").startswith(SUPERSEDED)
            ]
            db.executemany(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?"
                " WHERE seq = ?",
                requeue,
            )
            db.executemany("UPDATE deliveries SET last_error = ?, updated_at = ? WHERE seq = ?", supersede)
        return Requeued(len(requeue), len(failed) - len(requeue))

    def next_due(self, destination: str) -> float | None:
        """When the earliest claimable pending delivery of ``destination`` is due (epoch s), if any.

        Deliveries waiting behind an earlier one of the same dedup key do not count.
        """
        with self._lock:
            row = self._db.execute(
                """
                SELECT MIN(d.next_attempt_at) FROM deliveries d
                WHERE d.destination = ? AND d.status = 'pending'
                  AND NOT EXISTS (
                    SELECT 1 FROM deliveries e
                    WHERE e.destination = d.destination AND e.dedup_key = d.dedup_key
                      AND e.seq < d.seq AND e.status IN ('pending', 'inflight'))
                """,
                (destination,),
            ).fetchone()
        return row[0]

    def live_triggers(self, destination: str) -> list[dict[str, Any]]:
        """The alerts still open at ``destination``, oldest first: per dedup key, the latest
        *delivered* delivery to it, when that one is a trigger.

        A destination that forgets an alert unless it is sent again (Alertmanager) gets these
        again at its ``resend_s``; a later resolve, once delivered, takes its key off the list.
        """
        with self._lock:
            rows = self._db.execute(
                """
                SELECT a.body FROM deliveries d JOIN alerts a ON a.id = d.alert_id
                WHERE d.destination = ? AND d.status = 'delivered' AND d.action = 'trigger'
                  AND NOT EXISTS (
                    SELECT 1 FROM deliveries e
                    WHERE e.destination = d.destination AND e.dedup_key = d.dedup_key
                      AND e.seq > d.seq AND e.status = 'delivered')
                ORDER BY d.seq
                """,
                (destination,),
            ).fetchall()
        return [json.loads(body) for (body,) in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{destination: {status: n}}`` with every status present."""
        with self._lock:
            rows = self._db.execute(
                "SELECT destination, status, COUNT(*) FROM deliveries GROUP BY destination, status"
            ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for destination, status, n in rows:
            out.setdefault(destination, dict.fromkeys(STATUSES, 0))[status] = n
        return out

    def pending(self) -> int:
        """Deliveries not yet finished (pending or in flight), all destinations."""
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'inflight')"
            ).fetchone()[0]

    def rows(self, status: str | None = None, limit: int = 100) -> list[DeliveryRow]:
        """Deliveries, newest first, optionally of one status."""
        sql = (
            "SELECT seq, alert_id, destination, dedup_key, action, status, attempts, next_attempt_at, last_error,"
            " updated_at FROM deliveries"
        )
        params: tuple[Any, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            params = (status,)
        sql += " ORDER BY seq DESC LIMIT ?"
        with self._lock:
            return [DeliveryRow(*row) for row in self._db.execute(sql, (*params, limit)).fetchall()]

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        """The stored alert with id ``alert_id``, or ``None``."""
        with self._lock:
            row = self._db.execute("SELECT body FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return json.loads(row[0]) if row else None


class OutboxError(OSError):
    """The outbox file cannot be used; the message names the file and why, in one line."""


TABLES = {
    "alerts": ["id", "dedup_key", "action", "body", "enqueued_at"],
    "deliveries": [
        "seq",
        "alert_id",
        "destination",
        "dedup_key",
        "action",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "updated_at",
    ],
}


def _open(path: Path) -> sqlite3.Connection:
    """Connect to the outbox, create its tables if the file is new, and check that it is one.

    Every failure is an :class:`OutboxError` naming ``path``: a directory that cannot be
    created or written, a full disk, a file that is not SQLite (corrupt, truncated, another
    program's), an SQLite file of another program, an outbox of another layout.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutboxError(f"outbox {path}: cannot create its directory: {exc.strerror or exc}") from None
    if path.is_dir():
        raise OutboxError(f"outbox {path}: is a directory, not a file")
    db: sqlite3.Connection | None = None
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        existing = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        foreign = existing - set(TABLES) - {"sqlite_sequence"}
        if foreign and not existing & set(TABLES):
            raise OutboxError(
                f"outbox {path}: an SQLite file of another program (tables {', '.join(sorted(foreign))}), "
                "not a cascadewatch outbox"
            )
        for table in sorted(existing & set(TABLES)):
            found = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            if found != TABLES[table]:
                raise OutboxError(f"outbox {path}: table {table} has columns {', '.join(found)}, not an outbox's")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA)
        db.execute("SELECT COUNT(*) FROM deliveries").fetchone()
        if (check := db.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
            raise OutboxError(f"outbox {path}: damaged ({check})")
    except (sqlite3.Error, OSError) as exc:
        if db is not None:
            db.close()
        if isinstance(exc, OutboxError):
            raise
        raise OutboxError(f"outbox {path}: {_sqlite_reason(exc)}") from None
    return db


def _sqlite_reason(exc: BaseException) -> str:
    """One line for an SQLite or OS error on the outbox."""
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return f"not a readable outbox ({text}): corrupt, truncated or another program's file"
    if "disk is full" in text or getattr(exc, "errno", None) == errno.ENOSPC:
        return f"the disk is full ({text})"
    if "readonly" in text or "unable to open" in text:
        return f"cannot write it or its directory ({text})"
    return text


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error), under the outbox lock."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._db

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        finally:
            self._lock.release()


def _open_rank(db: sqlite3.Connection, destination: str, key: str) -> int:
    """The severity rank of the trigger of ``key`` open at ``destination`` (its last delivery of the
    key that did not fail is a trigger), ``-1`` when none is."""
    row = db.execute(
        "SELECT d.action, a.body FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
        " WHERE d.destination = ? AND d.dedup_key = ? AND d.status != 'failed' ORDER BY d.seq DESC LIMIT 1",
        (destination, key),
    ).fetchone()
    if row is None or row[0] != "trigger":
        return -1
    return SEVERITY_RANK.get(str(json.loads(row[1]).get("severity")), 0)
