"""Every venue of the registry has the same shape: the members of ``VenueModule``, really.

The type checker already holds each registry entry to :class:`VenueModule`; this test checks
what a type cannot: signatures (names, defaults), that the members work on real inputs, and
that every consumer of the registry (frame decoder, live config, simulator) knows the venue.
"""

from __future__ import annotations

import inspect
import json
import tomllib
from pathlib import Path

import pytest

from cascadewatch.connectors.frames import FrameDecoder
from cascadewatch.connectors.live import resolve_settings, venue_symbols
from cascadewatch.connectors.live_config import LiveConfig, VenueConfig
from cascadewatch.connectors.venues.base import SequenceRule, VenueParser
from cascadewatch.connectors.venues.live_common import (
    BookSync,
    ConnectionSpec,
    LiveDefaults,
    VenueLive,
)
from cascadewatch.connectors.venues.registry import (
    PARSERS,
    VENUE_NAMES,
    VENUES,
    VenueModule,
    parser_for,
    venue_module,
    venue_name,
)
from cascadewatch.pipelines.simulate.venues import FRAME_WRITERS, frame_writer

ROOT = Path(__file__).resolve().parents[1]

PROPERTIES = {"SOURCE", "Parser", "LIVE", "LiveBooks"}
FUNCTIONS = {
    "native_symbol",
    "instruments_paths",
    "listed_symbols",
    "poll_paths",
    "connections",
    "subscribe_messages",
    "unsubscribe_messages",
    "heartbeat_message",
    "is_data",
    "rollover_hint",
    "frame_key",
}


def test_the_protocol_is_the_list_this_test_checks() -> None:
    declared = {name for cls in (VenueModule, VenueLive) for name in vars(cls) if not name.startswith("_")}
    assert declared == PROPERTIES | FUNCTIONS


def test_names_and_source_tokens_are_unique_and_well_formed() -> None:
    assert VENUE_NAMES == tuple(VENUES) == ("binance", "bybit", "okx", "bitmex", "deribit", "hyperliquid")
    sources = [module.SOURCE for module in VENUES.values()]
    assert sources == ["binance-usdm", "bybit-linear", "okx-swap", "bitmex", "deribit", "hyperliquid"]
    assert sorted(PARSERS) == sorted(sources)
    for name, module in VENUES.items():
        assert " " not in module.SOURCE and "!" not in module.SOURCE
        assert venue_name(module.SOURCE) == name and venue_module(name) is module


def test_unknown_names_say_what_is_known() -> None:
    known = "binance, bybit, okx, bitmex, deribit, hyperliquid"
    with pytest.raises(KeyError, match=f"unknown venue 'kraken'; known: {known}"):
        venue_module("kraken")
    with pytest.raises(KeyError, match="unknown venue source 'kraken-futures'; known: binance-usdm"):
        parser_for("kraken-futures")
    with pytest.raises(KeyError, match="unknown venue source 'kraken-futures'"):
        venue_name("kraken-futures")


@pytest.mark.parametrize("name", VENUE_NAMES)
def test_module_functions_have_the_protocol_signatures(name: str) -> None:
    module = VENUES[name]
    for function in sorted(FUNCTIONS):
        declared = getattr(VenueModule, function)
        actual = getattr(module, function)
        assert inspect.isfunction(actual), (name, function)
        want = [(p.name, p.kind, p.default) for p in inspect.signature(declared).parameters.values()][1:]
        got = [(p.name, p.kind, p.default) for p in inspect.signature(actual).parameters.values()]
        assert got == want, (name, function)


@pytest.mark.parametrize("name", VENUE_NAMES)
def test_parser_class_and_book_sequence_rule(name: str) -> None:
    module = VENUES[name]
    assert issubclass(module.Parser, VenueParser) and module.Parser.SOURCE == module.SOURCE
    for method in ("parse_ws", "parse_rest"):
        assert getattr(module.Parser, method) is not getattr(VenueParser, method), (name, method)
    parser = parser_for(module.SOURCE)
    assert type(parser) is module.Parser
    rule, other = module.Parser.sequence_rule(), module.Parser.sequence_rule()
    assert isinstance(rule, SequenceRule) and rule is not other and rule.last_seq is None


@pytest.mark.parametrize("name", VENUE_NAMES)
def test_live_defaults_and_config_table(name: str) -> None:
    module = VENUES[name]
    live = module.LIVE
    assert isinstance(live, LiveDefaults)
    assert live.ws_url.startswith("wss://") and live.ws_book_url.startswith("wss://")
    assert live.rest_url.startswith("https://") and not live.rest_url.endswith("/")
    assert live.max_topics_per_connection >= live.max_topics_per_message >= 1
    assert live.subscribe_per_s > 0 and live.subscribe_burst >= 1 and live.book_depth >= 1
    assert isinstance(LiveConfig().venue(name), VenueConfig)
    assert LiveConfig().venues == list(VENUE_NAMES)
    example = tomllib.loads((ROOT / "deploy" / "config.example.toml").read_text())
    assert example["live"][name]["ws_url"] == live.ws_url  # the example documents every venue


@pytest.mark.parametrize("name", VENUE_NAMES)
def test_live_section_plans_subscribes_and_books(name: str) -> None:
    """Symbols, connections, request frames and the book state machine, on the venue's defaults."""
    module = VENUES[name]
    settings = resolve_settings(name, LiveConfig())
    symbols = venue_symbols(name, LiveConfig(symbols=["BTC", "ETH"]))
    assert symbols == [module.native_symbol("BTC"), module.native_symbol("ETH")] and symbols[0] != symbols[1]
    plan = module.connections(symbols, settings)
    assert plan and all(isinstance(spec, ConnectionSpec) and spec.topics for spec in plan)
    assert {spec.url for spec in plan} <= {settings.ws_url, settings.ws_book_url}
    topics = [topic for spec in plan for topic in spec.topics]
    assert len(topics) == len(set(topics)) and len(topics) >= 2 * len(symbols)  # market data and books
    for requests in (module.subscribe_messages, module.unsubscribe_messages):
        frames = requests(topics, 1)
        assert len(frames) == len(topics)
        assert all(isinstance(json.loads(frame), dict) for frame in frames)
        one_each = module.LIVE.max_topics_per_message == 1  # the venue takes one topic per request
        assert len(requests(topics, len(topics))) == (len(topics) if one_each else 1)
    heartbeat = module.heartbeat_message()
    assert (heartbeat is None) == (settings.heartbeat_s == 0)
    assert all(path.startswith("/") for path in module.instruments_paths(symbols) + module.poll_paths(symbols))
    books = module.LiveBooks(symbols, settings)
    assert isinstance(books, BookSync) and books.gaps == books.resyncs == 0
    for junk in (b"", b"pong", b'{"unrelated":true}'):
        assert module.is_data(junk) is False and module.rollover_hint(junk) is False
        assert module.frame_key(junk) is None


@pytest.mark.parametrize("name", VENUE_NAMES)
def test_every_venue_is_decoded_and_simulated(name: str) -> None:
    """The frame decoder parses the venue's source token; the simulator has its frame writer."""
    module = VENUES[name]
    decoder = FrameDecoder()
    assert type(decoder.parser(module.SOURCE)) is module.Parser
    assert decoder.decode(module.SOURCE + "!conn", b'{"event":"open","url":"wss://x"}', 7).events[0].venue == (
        module.SOURCE
    )
    writer = frame_writer(module.SOURCE)
    assert FRAME_WRITERS[name] is writer and writer.venue == name


def test_frame_writers_are_keyed_by_registry_names() -> None:
    assert set(FRAME_WRITERS) <= set(VENUES)
