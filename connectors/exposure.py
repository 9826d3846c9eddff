"""The desk's own exposure: positions (with stop and liquidation levels) and resting orders.

A TOML file::

    [[position]]
    asset = "BTC-USDT"       # canonical asset, as in snapshots
    side = "long"            # long | short
    size = 3.0               # base units, > 0
    stop = 93100.0           # optional: the stop price
    liquidation = 88000.0    # optional: the liquidation price

    [[order]]
    asset = "BTC-USDT"
    side = "buy"             # buy | sell
    size = 1.0
    price = 93000.0          # the resting limit price

or a CSV file with the header ``kind,asset,side,size,price,stop,liquidation`` (``kind``:
``position`` or ``order``; empty cells for what does not apply). Every entry is checked: a
known asset (``BASE-QUOTE`` with quote USDT, USDC or USD, and a base among ``known_bases``
when given), a known side, a size > 0, levels > 0, a position with a stop or a liquidation
level, an order with a price. The first problem is an :class:`ExposureError` naming the file
and the line (``book.toml:7: position 2: size -3.0 must be > 0``).

:class:`ExposureFile` watches the file: :meth:`ExposureFile.current` re-reads it when its
size or modification time changed; a file that fails the checks is logged and the previous
good book stays in force.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import os
import re
import threading
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("cascadewatch.exposure")

ASSET = re.compile(r"^[A-Z0-9]{1,20}-(USDT|USDC|USD)$")
CSV_HEADER = ("kind", "asset", "side", "size", "price", "stop", "liquidation")


class ExposureError(ValueError):
    """A book that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Position:
    """A position: ``long`` loses on a fall (down), ``short`` on a rise (up)."""

    asset: str
    side: str
    size: float
    stop: float | None
    liquidation: float | None


@dataclass(frozen=True)
class Order:
    """A resting limit order: a ``buy`` below the price fills on a fall, a ``sell`` above on a rise."""

    asset: str
    side: str
    size: float
    price: float


@dataclass(frozen=True)
class Book:
    """The desk's positions and resting orders."""

    positions: tuple[Position, ...] = ()
    orders: tuple[Order, ...] = ()

    def for_asset(self, asset: str) -> tuple[list[Position], list[Order]]:
        """The positions and orders of ``asset``."""
        return [p for p in self.positions if p.asset == asset], [o for o in self.orders if o.asset == asset]


def _number(value: Any, what: str, where: str, required: bool = True) -> float | None:
    if value is None or value == "":
        if required:
            raise ExposureError(f"{where}: {what} is missing")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ExposureError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise ExposureError(f"{where}: {what} {value!r} must be > 0")
    return number


def _asset(value: Any, where: str, known_bases: Iterable[str] | None) -> str:
    asset = str(value or "")
    if not ASSET.match(asset):
        raise ExposureError(f"{where}: unknown asset {asset!r} (use BASE-QUOTE as in snapshots, e.g. BTC-USDT)")
    bases = {b.upper() for b in known_bases} if known_bases is not None else None
    if bases is not None and asset.split("-")[0] not in bases:
        raise ExposureError(f"{where}: unknown asset {asset!r} (this run watches {', '.join(sorted(bases))})")
    return asset


def _entry(kind: str, raw: dict[str, Any], where: str, known_bases: Iterable[str] | None) -> Position | Order:
    """One checked entry (``raw``: its fields as read)."""
    asset = _asset(raw.get("asset"), where, known_bases)
    side = str(raw.get("side") or "")
    size = _number(raw.get("size"), "size", where) or 0.0
    if kind == "position":
        if side not in ("long", "short"):
            raise ExposureError(f"{where}: position side {side!r} must be long or short")
        stop = _number(raw.get("stop"), "stop", where, required=False)
        liquidation = _number(raw.get("liquidation"), "liquidation", where, required=False)
        if stop is None and liquidation is None:
            raise ExposureError(f"{where}: a position needs a stop or a liquidation level")
        return Position(asset, side, size, stop, liquidation)
    if kind == "order":
        if side not in ("buy", "sell"):
            raise ExposureError(f"{where}: order side {side!r} must be buy or sell")
        return Order(asset, side, size, _number(raw.get("price"), "price", where) or 0.0)
    raise ExposureError(f"{where}: unknown kind {kind!r} (use position or order)")


def _table_lines(text: str, table: str) -> list[int]:
    """1-based line numbers of the ``[[table]]`` headers, in order."""
    pattern = re.compile(rf"^\s*\[\[\s*{table}\s*\]\]")
    return [i for i, line in enumerate(text.splitlines(), start=1) if pattern.match(line)]


def parse_toml(text: str, name: str, known_bases: Iterable[str] | None = None) -> Book:
    """A :class:`Book` from TOML text (see the module doc); ``name`` names the file in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+)", str(exc))
        line = match.group(1) if match else "?"
        raise ExposureError(f"{name}:{line}: malformed TOML: {exc}") from None
    unknown = sorted(set(data) - {"position", "order"})
    if unknown:
        raise ExposureError(f"{name}: unknown table(s) {', '.join(unknown)} (use [[position]] and [[order]])")
    entries: dict[str, list[Any]] = {"position": [], "order": []}
    for kind in entries:
        tables = data.get(kind, [])
        if not isinstance(tables, list):
            raise ExposureError(f"{name}: {kind} must be an array of tables ([[{kind}]])")
        lines = _table_lines(text, kind)
        for i, raw in enumerate(tables):
            where = f"{name}:{lines[i] if i < len(lines) else '?'}: {kind} {i + 1}"
            allowed = (
                {"asset", "side", "size", "stop", "liquidation"}
                if kind == "position"
                else {"asset", "side", "size", "price"}
            )
            extra = sorted(set(raw) - allowed)
            if extra:
                raise ExposureError(f"{where}: unknown key(s) {', '.join(extra)}")
            entries[kind].append(_entry(kind, raw, where, known_bases))
    return Book(tuple(entries["position"]), tuple(entries["order"]))


def parse_csv(text: str, name: str, known_bases: Iterable[str] | None = None) -> Book:
    """A :class:`Book` from CSV text with the header ``kind,asset,side,size,price,stop,liquidation``."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(cell.strip() for cell in rows[0]) != CSV_HEADER:
        raise ExposureError(f"{name}:1: the header must be {','.join(CSV_HEADER)}")
    positions: list[Position] = []
    orders: list[Order] = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{name}:{line_no}"
        if len(row) != len(CSV_HEADER):
            raise ExposureError(f"{where}: {len(row)} cells, expected {len(CSV_HEADER)}")
        raw = {key: cell.strip() for key, cell in zip(CSV_HEADER, row, strict=True)}
        entry = _entry(raw.pop("kind"), raw, where, known_bases)
        (positions if isinstance(entry, Position) else orders).append(entry)  # type: ignore[arg-type]  # the isinstance picks the list
    return Book(tuple(positions), tuple(orders))


def parse_book(text: str, name: str, known_bases: Iterable[str] | None = None) -> Book:
    """A :class:`Book` from ``text``: CSV when ``name`` ends in ``.csv``, else TOML."""
    if name.lower().endswith(".csv"):
        return parse_csv(text, name, known_bases)
    return parse_toml(text, name, known_bases)


def text_digest(text: str) -> str:
    """First 16 hex of the SHA-256 of a book's text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class ExposureFile:
    """The book in ``path``, re-read when the file changes; a bad file keeps the previous book.

    The first read must succeed (:class:`ExposureError` otherwise: a run does not start on a
    bad book). ``error`` holds the latest problem (``None`` once a good file is read).
    """

    def __init__(self, path: str | os.PathLike[str], known_bases: Iterable[str] | None = None) -> None:
        self.path = Path(path)
        self.known_bases = list(known_bases) if known_bases is not None else None
        self.error: str | None = None
        self.digest = ""
        """First 16 hex of the SHA-256 of the book text in force (the audit manifest names it)."""
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._book = self._read()

    def _read(self) -> Book:
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ExposureError(f"{self.path.name}: cannot read the exposure file: {exc}") from None
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        book = parse_book(text, self.path.name, self.known_bases)
        self.digest = text_digest(text)
        return book

    def current(self) -> Book:
        """The book in force: re-read first if the file changed since the last read."""
        with self._lock:
            try:
                stat = self.path.stat()
                changed = (stat.st_mtime_ns, stat.st_size) != self._stamp
            except OSError:
                changed = False
            if changed:
                try:
                    self._book = self._read()
                    self.error = None
                    log.info("exposure %s reloaded", self.path)
                except ExposureError as exc:
                    self.error = str(exc)
                    log.error("exposure file rejected, the previous one stays in force: %s", exc)
            return self._book

    def replace(self, text: str) -> Book:
        """Check ``text`` and, if good, write it to the file (atomically) and put it in force."""
        book = parse_book(text, self.path.name, self.known_bases)
        temporary = self.path.with_name(f".{self.path.name}.new")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, self.path)
        with self._lock:
            stat = self.path.stat()
            self._stamp = (stat.st_mtime_ns, stat.st_size)
            self._book = book
            self.digest = text_digest(text)
            self.error = None
        log.info("exposure %s replaced over HTTP", self.path)
        return book
