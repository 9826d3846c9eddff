"""Deribit perpetuals (``deribit``): raw schemas, the frame parser and the live section.

Deribit speaks JSON-RPC 2.0 over one websocket (``wss://www.deribit.com/ws/api/v2``). Pushes are
notifications ``{"jsonrpc": "2.0", "method": "subscription", "params": {"channel": ...,
"data": ...}}``; the channel is ``<kind>.<instrument>.<interval>`` (``trades.BTC-PERPETUAL.100ms``;
``raw`` needs authentication, ``100ms`` / ``agg2`` do not; every interval parses alike).
Dispatch is on the channel's kind:

================ ====================== ======================================================
channel kind     kind                   events
================ ====================== ======================================================
trades           ``trade``              :class:`Trade` per row (``direction`` = taker side);
                 (``trade+liquidation``  plus :class:`Liquidation` per liquidated side of a row
                 when a row has one)    carrying ``liquidation`` (see below)
book             ``book``               ``type == "snapshot"``: :class:`BookSnapshot`;
                                        ``"change"``: :class:`BookDelta` (see the rule)
ticker           ``ticker``             :class:`MarkPrice` (``mark_price``, ``index_price``,
                                        ``funding_8h``) and :class:`OpenInterest`
quote, perpetual, ``skipped:<kind>``    none
incremental_ticker,
deribit_price_index,
deribit_price_ranking,
estimated_expiration_price,
markprice, platform_state,
announcements, chart, instrument
================ ====================== ======================================================

Any other channel kind raises ``ParseError("unknown_channel")``. Instruments that are not
perpetuals (futures ``BTC-27DEC24``, options ``BTC-27DEC24-60000-C``, combos) give kind
``skipped:not_perpetual``.

Control frames (no events): a JSON-RPC response ``{"id": n, "result": ...}`` (subscribe
acknowledgement, the answer to ``public/test`` or ``public/set_heartbeat``) is kind ``control``;
``{"id": n, "error": {"code", "message"}}`` is ``ParseError("control_error")`` (a refused
request must not vanish); ``{"method": "heartbeat", "params": {"type": "heartbeat" |
"test_request"}}`` is kind ``control:heartbeat`` (the live session answers ``test_request``
with ``public/test``, :func:`reply_to`).

Instruments and units. ``BTC-PERPETUAL`` / ``ETH-PERPETUAL`` are *inverse* contracts
(Deribit's ``instrument_type: "reversed"``): one contract is worth ``contract_size`` USD (10 USD
for BTC, 1 USD for ETH) and every ``amount`` on the websocket (trades, book levels) and
``open_interest`` are already in USD, multiples of the contract size. So ``qty`` (base units)
= ``amount / price`` with the price of the same row (the trade or level price; the mark price for
open interest) and ``notional`` = ``amount`` USD. ``X_USDC-PERPETUAL`` (and ``X_USDT-``) are
*linear*: ``amount`` is in base units (``qty = amount``). This is the
:meth:`InstrumentInfo.to_base` rule with ``ct_val = 1`` (the amount, not the contract count, is
what Deribit sends). Canonical names: ``BTC-PERPETUAL`` -> ``BTC-USD-PERP`` (an inverse contract
settles in BTC but is quoted and sized in USD), ``BTC_USDC-PERPETUAL`` -> ``BTC-USDC-PERP``.
Snapshots therefore group Deribit's main book under the asset ``BTC-USD``, apart from the
USDT-margined venues' ``BTC-USDT``. The instrument is known from its name alone; the REST body of
``/api/v2/public/get_instruments`` (kind ``instruments``) refreshes the catalog (``instrument_type``,
``tick_size``) and is required for nothing.

Liquidations. Deribit has no liquidation channel: it flags fills of liquidation orders on the
public ``trades`` channel with ``liquidation``: ``"M"`` (the maker side of the fill was being
liquidated), ``"T"`` (the taker side) or ``"MT"`` (both). ``direction`` is the taker's side, the
maker took the other one; a liquidated side that *sold* was a long, one that *bought* a short:

- ``"T"``: taker ``sell`` -> ``long`` liquidated; taker ``buy`` -> ``short``;
- ``"M"``: taker ``buy`` (the maker sold) -> ``long``; taker ``sell`` -> ``short``;
- ``"MT"``: both: one ``long`` and one ``short`` :class:`Liquidation`, each of the fill's size.

``price`` = the fill price (not a bankruptcy price), ``qty`` = the fill size in base units,
``notional = price * qty`` (= ``amount`` USD on an inverse contract), ``ts`` the fill time. Every
liquidation fill is published (no per-second throttle), so Deribit's liquidation flow is complete.

Order book rule (Deribit docs, "Notifications: book.{instrument_name}.{interval}"), for the book
module. ``change_id`` is per instrument:

1. the first notification after subscribing is ``type == "snapshot"`` with every level as
   ``["new", price, amount]``; it is a :class:`BookSnapshot` with ``seq = change_id``. A snapshot
   may carry a ``prev_change_id`` (observed: ``LINK_USDC-PERPETUAL``): it still replaces the book.
   Recordings from before Deribit added ``type`` have none; there a snapshot is the notification
   without ``prev_change_id``.
2. every ``type == "change"`` is a :class:`BookDelta` with ``seq = change_id`` and
   ``prev_seq = prev_change_id``; it continues the book iff ``prev_seq`` equals the ``seq`` of
   the previous message of that instrument. Otherwise notifications were lost: the book is
   invalid, the live session unsubscribes and subscribes the channel again, and Deribit sends a
   fresh snapshot (there is no REST splice for this stream).
3. level actions: ``new`` / ``change`` set the level to ``amount`` (absolute; converted to base
   units), ``delete`` removes it (qty 0). An action other than those three is ``schema``.

``ticker``: ``mark_price`` and ``index_price`` in USD; ``funding_8h`` (the funding rate over the
last 8 hours, a fraction; the same period as Binance, Bybit and OKX) is the ``funding`` of the
:class:`MarkPrice`; ``current_funding`` is not used. ``open_interest`` is in USD on an inverse
perpetual (``qty = open_interest / mark_price``, ``notional = open_interest``) and in base units on
a linear one (``notional = qty * mark_price``).

Validation as in every venue: prices finite and > 0 (``bad_price``), amounts finite and >= 0
(``bad_qty``), JSON of the wrong shape ``schema``, malformed JSON ``malformed_json``.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Sequence as _Sequence
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import msgspec

from cascadewatch.connectors.events import (
    AnyEvent,
    BookDelta,
    BookSnapshot,
    MarkPrice,
    OpenInterest,
    PositionSide,
    Trade,
)
from cascadewatch.connectors.reasons import Reason
from cascadewatch.connectors.units import NS_PER_MS
from cascadewatch.connectors.venues.base import (
    Catalog,
    InstrumentInfo,
    Parsed,
    ParseError,
    SeqStep,
    SequenceRule,
    VenueParser,
    Verdict,
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
    chunk,
    plan_connections,
)

SOURCE = "deribit"

_INF = math.inf
_PERPETUAL = "-PERPETUAL"
_NOT_PERPETUAL = "skipped:not_perpetual"
_SKIPPED_KINDS = frozenset(
    {
        "quote",
        "perpetual",
        "incremental_ticker",
        "deribit_price_index",
        "deribit_price_ranking",
        "deribit_volatility_index",
        "estimated_expiration_price",
        "markprice",
        "platform_state",
        "announcements",
        "chart",
        "instrument",
    }
)

# --------------------------------------------------------------------------- raw schemas


class RawDeribitParams(msgspec.Struct, frozen=True, kw_only=True):
    """``params`` of a notification: the channel and its data (kept raw); ``type`` of a heartbeat."""

    channel: str = ""
    data: msgspec.Raw = msgspec.Raw()
    type: str = ""


class RawDeribitEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """Every JSON-RPC frame: a notification (``method``) or a response (``id``, ``result``/``error``)."""

    jsonrpc: str = ""
    id: int | str | None = None
    method: str = ""
    params: RawDeribitParams | None = None
    result: msgspec.Raw = msgspec.Raw()
    error: msgspec.Raw = msgspec.Raw()


class RawDeribitTrade(msgspec.Struct, frozen=True, kw_only=True):
    """A ``trades`` row (``trade_id``, ``tick_direction``, ``mark_price``, ``index_price`` unused)."""

    instrument_name: str
    price: float
    amount: float
    direction: Literal["buy", "sell"]
    timestamp: int
    trade_seq: int = 0
    liquidation: Literal["M", "T", "MT"] | None = None


class RawDeribitBook(msgspec.Struct, frozen=True, kw_only=True):
    """``book`` data: levels ``[action, price, amount]``; ``type`` absent in old recordings."""

    instrument_name: str
    timestamp: int
    change_id: int
    prev_change_id: int | None = None
    type: str = ""
    bids: list[tuple[str, float, float]]
    asks: list[tuple[str, float, float]]


class RawDeribitTicker(msgspec.Struct, frozen=True, kw_only=True):
    """``ticker`` data, the fields used."""

    instrument_name: str
    timestamp: int
    mark_price: float
    index_price: float | None = None
    funding_8h: float | None = None
    open_interest: float | None = None


class RawDeribitInstrument(msgspec.Struct, frozen=True, kw_only=True):
    """A ``public/get_instruments`` row, the fields used."""

    instrument_name: str
    kind: str = ""
    settlement_period: str = ""
    instrument_type: str = ""
    base_currency: str = ""
    counter_currency: str = ""
    quote_currency: str = ""
    tick_size: float = 0.0
    is_active: bool = True


class RawDeribitInstruments(msgspec.Struct, frozen=True, kw_only=True):
    """The ``public/get_instruments`` body."""

    result: list[RawDeribitInstrument] | None = None
    error: msgspec.Raw = msgspec.Raw()


_ENVELOPE = msgspec.json.Decoder(RawDeribitEnvelope)
_TRADES = msgspec.json.Decoder(list[RawDeribitTrade])
_BOOK = msgspec.json.Decoder(RawDeribitBook)
_TICKER = msgspec.json.Decoder(RawDeribitTicker)
_INSTRUMENTS = msgspec.json.Decoder(RawDeribitInstruments)


def instrument_info(symbol: str, inverse: bool | None = None, tick: float = 0.0) -> InstrumentInfo | None:
    """Catalog entry of a perpetual from its name (``BTC-PERPETUAL``: inverse, quoted in USD;
    ``BTC_USDC-PERPETUAL``: linear in USDC); ``None`` for anything that is not a perpetual.

    ``inverse`` overrides what the name says (from ``instrument_type`` of a REST row).
    """
    if not symbol.endswith(_PERPETUAL):
        return None
    head = symbol[: -len(_PERPETUAL)]
    if not head or "-" in head:
        return None
    base, _, quote = head.partition("_")
    if not base or (not quote and "_" in head):
        return None
    is_inverse = not quote if inverse is None else inverse
    return InstrumentInfo(
        symbol=symbol,
        instrument=canonical(base, quote or "USD"),
        base=base,
        quote=quote or "USD",
        ct_val=1.0,  # Deribit sends amounts (USD for inverse, base for linear), not contract counts
        inverse=is_inverse,
        tick=tick if 0.0 <= tick < _INF else 0.0,
    )


# --------------------------------------------------------------------------- book sequence


class BookSequence(SequenceRule):
    """The ``prev_change_id -> change_id`` chain of the module docstring."""

    def check(self, delta: SeqStep) -> Verdict:
        """Deribit's rule: each change's ``prev_change_id`` equals the last ``change_id``."""
        if self.last_seq is None:
            return Verdict.SKIP
        if delta.prev_seq != self.last_seq:
            return Verdict.GAP
        self.last_seq = delta.seq
        return Verdict.APPLY


def _liquidated(flag: str, taker: str) -> tuple[PositionSide, ...]:
    """The positions a fill liquidated: ``flag`` M / T / MT, ``taker`` the taker's side."""
    taker_pos: PositionSide = "long" if taker == "sell" else "short"
    maker_pos: PositionSide = "short" if taker == "sell" else "long"
    if flag == "T":
        return (taker_pos,)
    if flag == "M":
        return (maker_pos,)
    return ("long", "short")  # MT: both sides of the fill were under liquidation


# --------------------------------------------------------------------------- parser


class Parser(VenueParser):
    """Deribit perpetuals: websocket frames and REST bootstrap bodies -> :class:`Parsed`."""

    SOURCE = SOURCE

    @classmethod
    def sequence_rule(cls) -> BookSequence:
        """Deribit's sequence rule (:class:`BookSequence`)."""
        return BookSequence()

    def __init__(self, catalog: Catalog | None = None) -> None:
        super().__init__(catalog)
        self._handlers = {"trades": self._trades, "book": self._book, "ticker": self._ticker}

    def instrument_of(self, symbol: str) -> str:
        """Canonical instrument of ``symbol`` (known from the name alone), ``""`` if not a perpetual."""
        info = self._info(symbol)
        return info.instrument if info is not None else ""

    def _info(self, symbol: str) -> InstrumentInfo | None:
        info = self.catalog.get(symbol)
        if info is None:
            info = instrument_info(symbol)
            if info is not None and len(self.catalog.by_symbol) < 10_000:  # bounded under garbage input
                self.catalog.add(info)
        return info

    # ---------------------------------------------------------------- entry points

    def parse_ws(self, payload: bytes | str, recv: int) -> Parsed:
        """Parse one websocket frame into events or a skip reason."""
        envelope: RawDeribitEnvelope = decode(_ENVELOPE, payload, "frame")
        if envelope.method == "subscription":
            params = envelope.params
            if params is None or not params.channel:
                raise ParseError(Reason.SCHEMA, "subscription without channel")
            kind, _, rest = params.channel.partition(".")
            handler = self._handlers.get(kind)
            if handler is None:
                if kind in _SKIPPED_KINDS:
                    return Parsed(f"skipped:{kind}")
                raise ParseError(Reason.UNKNOWN_CHANNEL, params.channel[:80])
            symbol = rest.partition(".")[0]
            info = self._info(symbol)
            if info is None:
                return Parsed(_NOT_PERPETUAL)
            if not params.data:
                raise ParseError(Reason.SCHEMA, f"{params.channel}: no data")
            return handler(params.data, info, recv)
        if envelope.method == "heartbeat":
            return Parsed("control:heartbeat")
        if envelope.error:
            raise ParseError(Reason.CONTROL_ERROR, bytes(envelope.error).decode("utf-8", "replace")[:200])
        if envelope.id is not None and envelope.result:
            return Parsed("control")
        raise ParseError(Reason.SCHEMA, "neither a notification nor a response")

    def parse_rest(self, path: str, body: bytes, recv: int) -> Parsed:
        """Parse ``/api/v2/public/get_instruments`` (catalog refresh); other paths are unknown."""
        url = urlsplit(path)
        if url.path.rstrip("/") != "/api/v2/public/get_instruments":
            raise ParseError(Reason.UNKNOWN_REST_PATH, path[:120])
        reply: RawDeribitInstruments = decode(_INSTRUMENTS, body, "get_instruments")
        if reply.error or reply.result is None:
            raise ParseError(Reason.REST_ERROR, bytes(reply.error).decode("utf-8", "replace")[:200] or "no result")
        if parse_qs(url.query).get("kind", ["future"])[0] != "future":
            return Parsed(_NOT_PERPETUAL)
        for row in reply.result:
            if row.settlement_period != "perpetual":
                continue
            inverse = row.instrument_type == "reversed" if row.instrument_type else None
            info = instrument_info(row.instrument_name, inverse, row.tick_size)
            if info is not None:
                self.catalog.add(info)
        return Parsed("instruments")

    # ---------------------------------------------------------------- channels

    def _trades(self, data: msgspec.Raw, info: InstrumentInfo, recv: int) -> Parsed:
        rows: list[RawDeribitTrade] = decode(_TRADES, data, "trades")
        events: list[AnyEvent] = []
        forced = False
        for row in rows:
            if row.instrument_name != info.symbol:
                raise ParseError(Reason.SCHEMA, f"trade of {row.instrument_name[:40]} on {info.symbol}")
            price = checked_price(row.price, "price")
            qty = info.to_base(checked_qty(row.amount, "amount"), price)
            trade = Trade(
                venue=SOURCE,
                symbol=info.symbol,
                instrument=info.instrument,
                ts=row.timestamp * NS_PER_MS,
                recv=recv,
                price=price,
                qty=qty,
                side=row.direction,
            )
            events.append(trade)
            if row.liquidation is None:
                continue
            forced = True
            events.extend(forced_fill(trade, side) for side in _liquidated(row.liquidation, row.direction))
        return Parsed("trade+liquidation" if forced else "trade", events)

    def _levels(self, raw: list[tuple[str, float, float]], info: InstrumentInfo) -> tuple[tuple[float, float], ...]:
        out = []
        for action, price, amount in raw:
            checked_price(price, "level price")
            if action == "delete":
                out.append((price, 0.0))
            elif action in ("new", "change"):
                out.append((price, info.to_base(checked_qty(amount, "level amount"), price)))
            else:
                raise ParseError(Reason.SCHEMA, f"level action={action[:20]!r}")
        return tuple(out)

    def _book(self, data: msgspec.Raw, info: InstrumentInfo, recv: int) -> Parsed:
        row: RawDeribitBook = decode(_BOOK, data, "book")
        if row.instrument_name != info.symbol:
            raise ParseError(Reason.SCHEMA, f"book of {row.instrument_name[:40]} on {info.symbol}")
        bids = self._levels(row.bids, info)
        asks = self._levels(row.asks, info)
        ts = row.timestamp * NS_PER_MS
        if row.type == "snapshot" or (not row.type and row.prev_change_id is None):
            event: AnyEvent = BookSnapshot(
                venue=SOURCE,
                symbol=info.symbol,
                instrument=info.instrument,
                ts=ts,
                recv=recv,
                bids=bids,
                asks=asks,
                seq=row.change_id,
            )
        elif row.type in ("change", ""):
            event = BookDelta(
                venue=SOURCE,
                symbol=info.symbol,
                instrument=info.instrument,
                ts=ts,
                recv=recv,
                bids=bids,
                asks=asks,
                seq=row.change_id,
                prev_seq=row.prev_change_id,
            )
        else:
            raise ParseError(Reason.SCHEMA, f"book type={row.type[:20]!r}")
        return Parsed("book", [event])

    def _ticker(self, data: msgspec.Raw, info: InstrumentInfo, recv: int) -> Parsed:
        row: RawDeribitTicker = decode(_TICKER, data, "ticker")
        if row.instrument_name != info.symbol:
            raise ParseError(Reason.SCHEMA, f"ticker of {row.instrument_name[:40]} on {info.symbol}")
        mark = checked_price(row.mark_price, "mark_price")
        index = checked_price(row.index_price, "index_price") if row.index_price is not None else None
        funding = row.funding_8h if row.funding_8h is not None and math.isfinite(row.funding_8h) else None
        ts = row.timestamp * NS_PER_MS
        events: list[AnyEvent] = [
            MarkPrice(
                venue=SOURCE,
                symbol=info.symbol,
                instrument=info.instrument,
                ts=ts,
                recv=recv,
                price=mark,
                index=index,
                funding=funding,
            )
        ]
        if row.open_interest is not None:
            oi = checked_qty(row.open_interest, "open_interest")
            qty = info.to_base(oi, mark)
            events.append(
                OpenInterest(
                    venue=SOURCE,
                    symbol=info.symbol,
                    instrument=info.instrument,
                    ts=ts,
                    recv=recv,
                    qty=qty,
                    notional=oi if info.inverse else checked_notional(mark, qty),
                )
            )
        return Parsed("ticker", events)


# =============================================================================================
# Live connection (https://docs.deribit.com/#subscriptions). One websocket carries every
# channel; requests are JSON-RPC ``public/subscribe`` / ``public/unsubscribe`` with
# ``{"channels": [...]}`` (ids from the session's counter). Keep-alive is Deribit's own:
# ``public/set_heartbeat {"interval": 30}`` makes the server send ``heartbeat`` notifications and
# ``test_request``s, each of which must be answered with ``public/test`` at once or the server
# closes the connection (:func:`reply_to`). The set_heartbeat request is the session's periodic
# heartbeat message (every ``heartbeat_s`` < 30 s): it arms the heartbeat on every (re)connection
# and re-arming is harmless. A broken ``change_id`` chain is repaired by resubscribing the
# book channel (Deribit resends a snapshot). Topics are the channel names themselves.
# =============================================================================================

HEARTBEAT_INTERVAL_S = 30
"""The interval asked with ``public/set_heartbeat`` (Deribit's minimum is 10 s)."""
CONTROL_ID = 0
"""JSON-RPC id of the keep-alive requests (``set_heartbeat``, ``test``); subscriptions count from 1."""

LIVE = LiveDefaults(
    ws_url="wss://www.deribit.com/ws/api/v2",
    ws_book_url="wss://www.deribit.com/ws/api/v2",
    rest_url="https://www.deribit.com",
    max_lifetime_s=0.0,  # no documented lifetime
    heartbeat_s=10.0,  # re-arms set_heartbeat well within its 30 s interval
    max_topics_per_connection=300,
    max_topics_per_message=50,
    subscribe_per_s=5.0,  # non-matching-engine requests: a credit pool refilled at 20 per second
    subscribe_burst=10,
    poll_s=0.0,  # open interest and funding come with the ticker
    book_depth=1,  # no REST book snapshots: the subscription sends them
    rest_weight_per_min=600,
)
INTERVAL = "100ms"
CHANNELS = ("trades", "ticker")


def native_symbol(asset: str, quote: str = "USDT") -> str:
    """``BTC`` -> ``BTC-PERPETUAL`` (the inverse USD perpetual); quote ``USDC`` -> ``BTC_USDC-PERPETUAL``."""
    if quote.upper() == "USDC":
        return f"{asset.upper()}_USDC{_PERPETUAL}"
    return f"{asset.upper()}{_PERPETUAL}"


def _currency(symbol: str) -> str:
    head = symbol.removesuffix(_PERPETUAL)
    base, _, quote = head.partition("_")
    return quote or base


def instruments_paths(symbols: _Sequence[str]) -> list[str]:
    """``public/get_instruments`` of each settlement currency the symbols need (BTC, ETH, USDC...)."""
    currencies = sorted({_currency(symbol) for symbol in symbols})
    return [f"/api/v2/public/get_instruments?currency={currency}&kind=future" for currency in currencies]


def listed_symbols(path: str, body: bytes) -> set[str]:
    """Active perpetuals of a ``get_instruments`` reply; raises ``msgspec.DecodeError`` on a bad body."""
    reply = msgspec.json.decode(body, type=RawDeribitInstruments)
    if reply.result is None:
        raise msgspec.DecodeError("get_instruments: no result")
    return {row.instrument_name for row in reply.result if row.settlement_period == "perpetual" and row.is_active}


def poll_paths(symbols: _Sequence[str]) -> list[str]:
    """The REST paths polled while live: none (the ticker carries open interest and funding)."""
    return []


def book_topic(symbol: str) -> str:
    """The order book channel of ``symbol`` (``book.BTC-PERPETUAL.100ms``)."""
    return f"book.{symbol}.{INTERVAL}"


def connections(symbols: _Sequence[str], settings: LiveSettings) -> list[ConnectionSpec]:
    """Books, trades and tickers of ``symbols``, on as many connections as the topic limit needs."""
    books = [book_topic(symbol) for symbol in symbols]
    market = [f"{channel}.{symbol}.{INTERVAL}" for symbol in symbols for channel in CHANNELS]
    limit = settings.max_topics_per_connection
    if settings.ws_book_url == settings.ws_url:
        return plan_connections("public", settings.ws_url, books + market, limit)
    return plan_connections("public", settings.ws_url, market, limit) + plan_connections(
        "books", settings.ws_book_url, books, limit
    )


def _requests(method: str, topics: _Sequence[str], per_message: int, first_id: int) -> list[str]:
    return [
        msgspec.json.encode(
            {"jsonrpc": "2.0", "id": first_id + i, "method": method, "params": {"channels": list(group)}}
        ).decode()
        for i, group in enumerate(chunk(topics, per_message))
    ]


def subscribe_messages(topics: _Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
    """``{"jsonrpc": "2.0", "id": n, "method": "public/subscribe", "params": {"channels": [...]}}``."""
    return _requests("public/subscribe", topics, per_message, first_id)


def unsubscribe_messages(topics: _Sequence[str], per_message: int, first_id: int = 1) -> list[str]:
    """The ``public/unsubscribe`` requests for ``topics``."""
    return _requests("public/unsubscribe", topics, per_message, first_id)


def heartbeat_message() -> str | None:
    """``public/set_heartbeat`` with :data:`HEARTBEAT_INTERVAL_S` (arms the server's heartbeats)."""
    return msgspec.json.encode(
        {
            "jsonrpc": "2.0",
            "id": CONTROL_ID,
            "method": "public/set_heartbeat",
            "params": {"interval": HEARTBEAT_INTERVAL_S},
        }
    ).decode()


TEST_MESSAGE = msgspec.json.encode({"jsonrpc": "2.0", "id": CONTROL_ID, "method": "public/test", "params": {}}).decode()
"""The answer to a ``test_request``."""


class _HeartbeatParams(msgspec.Struct):
    type: str = ""


class _Heartbeat(msgspec.Struct):
    method: str = ""
    params: _HeartbeatParams | None = None


_heartbeat = msgspec.json.Decoder(_Heartbeat)


def reply_to(payload: bytes) -> str | None:
    """The request a frame asks for at once: ``public/test`` for a ``test_request`` heartbeat."""
    if b"test_request" not in payload:
        return None
    try:
        frame = _heartbeat.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if frame.method == "heartbeat" and frame.params is not None and frame.params.type == "test_request":
        return TEST_MESSAGE
    return None


def is_data(payload: bytes) -> bool:
    """A channel notification; responses and heartbeats are not."""
    return b'"method":"subscription"' in payload


def rollover_hint(payload: bytes) -> bool:
    """Deribit announces no connection closes."""
    return False


class _ProbeData(msgspec.Struct):
    instrument_name: str = ""
    change_id: int | None = None
    prev_change_id: int | None = None
    type: str = ""
    trade_seq: int | None = None


class _ProbeParams(msgspec.Struct):
    channel: str = ""
    data: _ProbeData | list[_ProbeData] | None = None


class _Probe(msgspec.Struct):
    method: str = ""
    params: _ProbeParams | None = None


_probe = msgspec.json.Decoder(_Probe)


def _probe_frame(payload: bytes, kind: bytes) -> _ProbeParams | None:
    if b'"channel":"' + kind + b"." not in payload:
        return None
    try:
        frame = _probe.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    params = frame.params
    if frame.method != "subscription" or params is None or not params.channel.startswith(kind.decode() + "."):
        return None
    return params


def _probe_book(payload: bytes) -> list[BookRow] | None:
    params = _probe_frame(payload, b"book")
    data = params.data if params is not None else None
    if not isinstance(data, _ProbeData) or data.change_id is None:
        return None
    snapshot = data.type == "snapshot" or (not data.type and data.prev_change_id is None)
    return [(data.instrument_name, snapshot, data.change_id, None if snapshot else data.prev_change_id)]


def frame_key(payload: bytes) -> tuple[str, int] | None:
    """``book``: ``change_id``; ``trades``: the largest ``trade_seq``; else ``None``."""
    rows = _probe_book(payload)
    if rows:
        return f"book|{rows[0][0]}", rows[0][2]
    params = _probe_frame(payload, b"trades")
    if params is None or not isinstance(params.data, list):
        return None
    seqs = [row.trade_seq for row in params.data if row.trade_seq is not None]
    return (f"trades|{params.channel.split('.')[1]}", max(seqs)) if seqs else None


class LiveBooks(ResubscribeBooks):
    """Deribit books: on a broken ``prev_change_id`` chain (:class:`BookSequence`), resubscribe."""

    def __init__(self, symbols: _Sequence[str], settings: LiveSettings, clock=_time.monotonic) -> None:
        super().__init__(symbols, _probe_book, book_topic, BookSequence, settings.resync_timeout_s, clock)
