"""Hyperliquid perpetuals (``hyperliquid``): raw schemas, the frame parser and the live section.

Hyperliquid's public websocket (``wss://api.hyperliquid.xyz/ws``) pushes ``{"channel": ...,
"data": ...}``. Dispatch is on ``channel``:

================== ============================= =============================================
channel            kind                          events
================== ============================= =============================================
trades             ``trade``                     :class:`Trade` per row (``side`` ``B`` = the
                   (``trade+liquidation_inferred`` taker bought, ``A`` = sold); plus an
                   when a row has one)           *inferred* :class:`Liquidation` (below)
l2Book             ``book``                      :class:`BookSnapshot` (every push is the
                                                 whole aggregated book: ``levels = [bids, asks]``)
activeAssetCtx     ``asset_ctx``                 :class:`MarkPrice` (``markPx``, ``index =
                                                 oraclePx``, ``funding``) and
                                                 :class:`OpenInterest`
subscriptionResponse, ``control``                none
pong
error              ``control:error``             none (counted apart: a refused subscription)
activeSpotAssetCtx, ``skipped:<channel>``         none
bbo, allMids,
candle, notification
================== ============================= =============================================

Any other channel raises ``ParseError("unknown_channel")``. Spot coins (``@107``, ``PURR/USDC``)
give kind ``skipped:not_perp``.

Units. Perpetuals are margined and quoted in USDC: prices in USD(C), sizes (``sz``, levels,
``openInterest``) in coins, so ``qty = sz`` with no contract conversion and no instrument
metadata. Canonical names: ``BTC`` -> ``BTC-USDC-PERP`` (snapshots group it under the asset
``BTC-USDC``, apart from the USDT-margined venues' ``BTC-USDT``); a builder-deployed perpetual
``xyz:TSLA`` -> ``xyz:TSLA-USDC-PERP``.

- ``trades``: ``time`` in ms; ``tid`` is unique but not ordered (not a sequence); ``users`` =
  ``[buyer, seller]`` (absent from older recordings).
- ``l2Book``: a snapshot of up to 20 aggregated levels per side, pushed each block at least 0.5 s
  after the previous push; it carries no sequence number, so there is no gap to detect: each push
  replaces the book (``seq = 0``). After a reconnect the first push is the snapshot.
- ``activeAssetCtx``: ``funding`` is Hyperliquid's *hourly* rate (funding is paid every hour);
  the :class:`MarkPrice` carries ``8 * funding``, the 8-hour rate the other venues publish, so
  funding is comparable across venues. ``openInterest`` is in coins: ``qty = openInterest``,
  ``notional = openInterest * markPx``. ``index`` is the oracle price (``oraclePx``), Hyperliquid's
  index of spot venues.

What Hyperliquid does not publish (as of the docs and the SDKs, 2025): **no public liquidation
feed and no public auto-deleveraging feed**. A liquidation is visible as such only in the
liquidated account's own fills (``userFills`` / ``userEvents``: a ``liquidation`` object with
``liquidatedUser``, ``markPx`` and ``method`` ``market`` | ``backstop``) and an ADL only in the
deleveraged account's fills (``dir: "Auto-Deleveraging"``); those are per-wallet subscriptions
(at most 10 users per IP), not market data. Liquidations sent to the book as market orders
(``method: market``, the first tier) look like any other public trade and cannot be told apart.

What is derived, and labelled as inferred: the second tier, the *backstop* liquidation, hands the
position to the liquidator vault of HLP, whose address is public (:data:`LIQUIDATORS`). A public
trade whose ``users`` include that address is emitted, besides its :class:`Trade`, as an
**inferred** :class:`Liquidation` (frame kind ``trade+liquidation_inferred``, counted apart): the
vault buying means a long was closed onto it (``side = "long"``), the vault selling a short.
``price`` = the trade price, ``qty = sz``, ``notional = price * qty``. Known limits: the vault also
trades its inherited positions out through the book, and those trades are counted too (with the
side opposite to the liquidation they unwind: a cascade of longs shows as long liquidations
followed by some "short" ones); market-tier liquidations and ADLs are missing, so Hyperliquid's
liquidation flow here is a lower bound of the true one.

Validation as in every venue: prices finite and > 0 (``bad_price``), sizes finite and >= 0
(``bad_qty``), JSON of the wrong shape ``schema``, malformed JSON ``malformed_json``.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Sequence as _Sequence
from typing import Literal

import msgspec

from cascadewatch.connectors.events import (
    AnyEvent,
    BookSnapshot,
    MarkPrice,
    OpenInterest,
    Trade,
)
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.units import NS_PER_MS
from cascadewatch.connectors.venues.base import (
    Catalog,
    Parsed,
    ParseError,
    SequenceRule,
    VenueParser,
    canonical,
    checked_notional,
    checked_price,
    checked_qty,
    decode,
    forced_fill,
)
from cascadewatch.connectors.venues.live_common import (
    BookRow,
    ConnectionSpec,
    LiveDefaults,
    LiveSettings,
    ResubscribeBooks,
    plan_connections,
)

SOURCE = "hyperliquid"

LIQUIDATORS: frozenset[str] = frozenset({"0x2e3d94f0562703b25c83308a05046ddaf9a8dd14"})
"""Addresses of HLP's liquidator vault ("HLP Liquidator", a child vault of HLP
``0xdfc24b077bc1425ad1dea75bcb6f8158e10df303`` in the ``vaultDetails`` reply of the info
endpoint), lower case: the counterparty of backstop liquidations."""
FUNDING_PERIODS_PER_8H = 8
"""Hyperliquid funding is hourly; events carry the 8-hour rate (``8 * funding``)."""

_NOT_PERP = "skipped:not_perp"
_QUOTE = "USDC"
_SKIPPED = frozenset({"activeSpotAssetCtx", "bbo", "allMids", "candle", "notification", "post"})
_CONTROL = frozenset({"subscriptionResponse", "pong"})

# --------------------------------------------------------------------------- raw schemas


class RawHyperliquidEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """Every websocket frame: the channel and its data (kept raw)."""

    channel: str
    data: msgspec.Raw = msgspec.Raw()


class RawHyperliquidTrade(msgspec.Struct, frozen=True, kw_only=True):
    """A ``trades`` row (``hash`` unused)."""

    coin: str
    side: Literal["B", "A"]
    px: float
    sz: float
    time: int
    tid: int = 0
    users: list[str] = []


class RawHyperliquidLevel(msgspec.Struct, frozen=True, kw_only=True):
    """One aggregated level: price, size (coins), number of orders."""

    px: float
    sz: float
    n: int = 0


class RawHyperliquidBook(msgspec.Struct, frozen=True, kw_only=True):
    """``l2Book`` data: ``levels = [bids, asks]``."""

    coin: str
    time: int
    levels: tuple[list[RawHyperliquidLevel], list[RawHyperliquidLevel]]


class RawHyperliquidCtx(msgspec.Struct, frozen=True, kw_only=True):
    """The ``ctx`` of ``activeAssetCtx`` (perpetual), the fields used."""

    markPx: float
    oraclePx: float | None = None
    funding: float | None = None
    openInterest: float | None = None


class RawHyperliquidAssetCtx(msgspec.Struct, frozen=True, kw_only=True):
    """``activeAssetCtx`` data (it carries no time: ``ts`` is the receive time)."""

    coin: str
    ctx: RawHyperliquidCtx


# Lax mode: Hyperliquid sends numbers as strings ("69997.0"); msgspec converts them.
_ENVELOPE = msgspec.json.Decoder(RawHyperliquidEnvelope)
_TRADES = msgspec.json.Decoder(list[RawHyperliquidTrade], strict=False)
_BOOK = msgspec.json.Decoder(RawHyperliquidBook, strict=False)
_CTX = msgspec.json.Decoder(RawHyperliquidAssetCtx, strict=False)


def is_perp(coin: str) -> bool:
    """A perpetual's coin name (``BTC``, ``kPEPE``, ``xyz:TSLA``), not a spot pair (``@107``, ``PURR/USDC``)."""
    return bool(coin) and not coin.startswith("@") and "/" not in coin


def instrument(coin: str) -> str:
    """Canonical instrument of a perpetual: ``BTC`` -> ``BTC-USDC-PERP``."""
    return canonical(coin, _QUOTE)


def _levels(raw: list[RawHyperliquidLevel]) -> tuple[tuple[float, float], ...]:
    return tuple((checked_price(level.px, "level px"), checked_qty(level.sz, "level sz")) for level in raw)


# --------------------------------------------------------------------------- parser


class Parser(VenueParser):
    """Hyperliquid perpetuals: websocket frames -> :class:`Parsed` (there are no REST bodies)."""

    SOURCE = SOURCE

    @classmethod
    def sequence_rule(cls) -> SequenceRule:
        """No deltas: every ``l2Book`` push is a snapshot (the default rule)."""
        return SequenceRule()

    def __init__(self, catalog: Catalog | None = None) -> None:
        super().__init__(catalog)
        self._handlers = {"trades": self._trades, "l2Book": self._book, "activeAssetCtx": self._ctx}

    def instrument_of(self, symbol: str) -> str:
        """Canonical instrument of coin ``symbol``; ``""`` for a spot pair."""
        return instrument(symbol) if is_perp(symbol) else ""

    def parse_ws(self, payload: bytes | str, recv: int) -> Parsed:
        """Parse one websocket frame into events or a skip reason."""
        envelope: RawHyperliquidEnvelope = decode(_ENVELOPE, payload, "frame")
        channel = envelope.channel
        handler = self._handlers.get(channel)
        if handler is None:
            if channel in _CONTROL:
                return Parsed("control")
            if channel == "error":
                return Parsed("control:error")
            if channel in _SKIPPED:
                return Parsed(f"skipped:{channel}")
            raise ParseError(Reason.UNKNOWN_CHANNEL, channel[:80])
        if not envelope.data:
            raise ParseError(Reason.SCHEMA, f"{channel}: no data")
        return handler(envelope.data, recv)

    def parse_rest(self, path: str, body: bytes, recv: int) -> Parsed:
        """Hyperliquid's info endpoint is POST-only: no REST body is recorded or read."""
        raise ParseError(Reason.UNKNOWN_REST_PATH, path[:120])

    def _trades(self, data: msgspec.Raw, recv: int) -> Parsed:
        rows: list[RawHyperliquidTrade] = decode(_TRADES, data, "trades")
        events: list[AnyEvent] = []
        inferred = False
        for row in rows:
            if not is_perp(row.coin):
                return Parsed(_NOT_PERP)
            price = checked_price(row.px, "px")
            qty = checked_qty(row.sz, "sz")
            name = instrument(row.coin)
            trade = Trade(
                venue=SOURCE,
                symbol=row.coin,
                instrument=name,
                ts=row.time * NS_PER_MS,
                recv=recv,
                price=price,
                qty=qty,
                side="buy" if row.side == "B" else "sell",
            )
            events.append(trade)
            if len(row.users) != 2:
                continue
            buyer, seller = row.users[0].lower(), row.users[1].lower()
            if buyer in LIQUIDATORS or seller in LIQUIDATORS:
                inferred = True
                events.append(forced_fill(trade, "long" if buyer in LIQUIDATORS else "short"))
        return Parsed("trade+liquidation_inferred" if inferred else "trade", events)

    def _book(self, data: msgspec.Raw, recv: int) -> Parsed:
        row: RawHyperliquidBook = decode(_BOOK, data, "l2Book")
        if not is_perp(row.coin):
            return Parsed(_NOT_PERP)
        snapshot = BookSnapshot(
            venue=SOURCE,
            symbol=row.coin,
            instrument=instrument(row.coin),
            ts=row.time * NS_PER_MS,
            recv=recv,
            bids=_levels(row.levels[0]),
            asks=_levels(row.levels[1]),
            seq=0,
        )
        return Parsed("book", [snapshot])

    def _ctx(self, data: msgspec.Raw, recv: int) -> Parsed:
        row: RawHyperliquidAssetCtx = decode(_CTX, data, "activeAssetCtx")
        if not is_perp(row.coin):
            return Parsed(_NOT_PERP)
        ctx = row.ctx
        mark = checked_price(ctx.markPx, "markPx")
        name = instrument(row.coin)
        funding = ctx.funding
        events: list[AnyEvent] = [
            MarkPrice(
                venue=SOURCE,
                symbol=row.coin,
                instrument=name,
                ts=recv,
                recv=recv,
                price=mark,
                index=checked_price(ctx.oraclePx, "oraclePx") if ctx.oraclePx is not None else None,
                funding=funding * FUNDING_PERIODS_PER_8H if funding is not None and math.isfinite(funding) else None,
            )
        ]
        if ctx.openInterest is not None:
            qty = checked_qty(ctx.openInterest, "openInterest")
            events.append(
                OpenInterest(
                    venue=SOURCE,
                    symbol=row.coin,
                    instrument=name,
                    ts=recv,
                    recv=recv,
                    qty=qty,
                    notional=checked_notional(mark, qty),
                )
            )
        return Parsed("asset_ctx", events)


# =============================================================================================
# Live connection (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/websocket).
# One subscription per request: ``{"method": "subscribe", "subscription": {"type": "trades",
# "coin": "BTC"}}`` (acknowledged on ``subscriptionResponse``); limits per IP: 10 connections,
# 1000 subscriptions, 2000 messages a minute. The server closes a connection idle for 60 s:
# ``{"method": "ping"}`` goes out every 30 s (answer ``{"channel": "pong"}``). ``l2Book`` pushes
# whole books, so a reconnect needs no resync beyond the next push. The info endpoint is
# POST-only, so there is no REST bootstrap (sizes are in coins: nothing to learn); symbols are
# subscribed as configured. Topics are written ``type:coin``.
# =============================================================================================

LIVE = LiveDefaults(
    ws_url="wss://api.hyperliquid.xyz/ws",
    ws_book_url="wss://api.hyperliquid.xyz/ws",
    rest_url="https://api.hyperliquid.xyz",
    max_lifetime_s=0.0,  # no documented lifetime
    heartbeat_s=30.0,
    max_topics_per_connection=1000,
    max_topics_per_message=1,  # one subscription per request
    subscribe_per_s=30.0,  # 2000 messages a minute per IP
    subscribe_burst=30,
    poll_s=0.0,
    book_depth=20,
    rest_weight_per_min=1200,
)
MARKET_CHANNELS = ("trades", "activeAssetCtx")
BOOK_CHANNEL = "l2Book"


def native_symbol(asset: str, quote: str = "USDT") -> str:
    """``BTC`` -> ``BTC`` (every perpetual is quoted in USDC; ``quote`` does not apply)."""
    return asset.upper()


def instruments_paths(symbols: _Sequence[str]) -> list[str]:
    """None: the info endpoint takes POST requests only (see the live section comment)."""
    return []


class _Universe(msgspec.Struct):
    name: str
    isDelisted: bool = False


class _Meta(msgspec.Struct):
    universe: list[_Universe]


def listed_symbols(path: str, body: bytes) -> set[str]:
    """The listed perpetuals of a ``{"type": "meta"}`` info reply (for a body obtained elsewhere)."""
    meta = msgspec.json.decode(body, type=_Meta)
    return {row.name for row in meta.universe if not row.isDelisted}


def poll_paths(symbols: _Sequence[str]) -> list[str]:
    """The REST paths polled while live: none (``activeAssetCtx`` is pushed)."""
    return []


def book_topic(symbol: str) -> str:
    """The order book topic of ``symbol`` (``l2Book:BTC``)."""
    return f"{BOOK_CHANNEL}:{symbol}"


def connections(symbols: _Sequence[str], settings: LiveSettings) -> list[ConnectionSpec]:
    """Books, trades and asset contexts of ``symbols``, split by the per-connection limit."""
    books = [book_topic(symbol) for symbol in symbols]
    market = [f"{channel}:{symbol}" for symbol in symbols for channel in MARKET_CHANNELS]
    limit = settings.max_topics_per_connection
    if settings.ws_book_url == settings.ws_url:
        return plan_connections("public", settings.ws_url, books + market, limit)
    return plan_connections("public", settings.ws_url, market, limit) + plan_connections(
        "books", settings.ws_book_url, books, limit
    )


def _requests(method: str, topics: _Sequence[str]) -> list[str]:
    out = []
    for topic in topics:
        kind, _, coin = topic.partition(":")
        out.append(msgspec.json.encode({"method": method, "subscription": {"type": kind, "coin": coin}}).decode())
    return out


def subscribe_messages(topics: _Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
    """One ``{"method": "subscribe", "subscription": {...}}`` per topic (``per_message`` cannot
    be more than 1 on Hyperliquid)."""
    return _requests("subscribe", topics)


def unsubscribe_messages(topics: _Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
    """One ``unsubscribe`` request per topic."""
    return _requests("unsubscribe", topics)


def heartbeat_message() -> str | None:
    """Hyperliquid's application ping."""
    return '{"method":"ping"}'


_DATA_HEADS = (b'{"channel":"trades"', b'{"channel":"l2Book"', b'{"channel":"activeAssetCtx"')


def is_data(payload: bytes) -> bool:
    """A market-data push (trades, books, asset contexts); acks and pongs are not."""
    return payload.startswith(_DATA_HEADS)


def rollover_hint(payload: bytes) -> bool:
    """Hyperliquid announces no connection closes."""
    return False


class _ProbeBook(msgspec.Struct):
    coin: str = ""
    time: int = 0


class _Probe(msgspec.Struct):
    channel: str = ""
    data: _ProbeBook | None = None


_probe = msgspec.json.Decoder(_Probe)


def _probe_book(payload: bytes) -> list[BookRow] | None:
    if not payload.startswith(b'{"channel":"l2Book"'):
        return None
    try:
        frame = _probe.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if frame.data is None or not frame.data.coin:
        return None
    return [(frame.data.coin, True, 0, None)]


def frame_key(payload: bytes) -> tuple[str, int] | None:
    """``l2Book``: its ``time`` (one push per block); trades have no ordered id: ``None``."""
    if not payload.startswith(b'{"channel":"l2Book"'):
        return None
    try:
        frame = _probe.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if frame.data is None or not frame.data.coin:
        return None
    return f"l2Book|{frame.data.coin}", frame.data.time


class LiveBooks(ResubscribeBooks):
    """Hyperliquid books: every push is a snapshot, so a book is valid from its first push after
    a (re)connection; one that gets none within ``resync_timeout_s`` is subscribed again."""

    def __init__(self, symbols: _Sequence[str], settings: LiveSettings, clock=_time.monotonic) -> None:
        super().__init__(symbols, _probe_book, book_topic, SequenceRule, settings.resync_timeout_s, clock)
