"""Start-up checks: what can be known to fail before the dataflow starts, as one line each.

A failure inside the dataflow's start (a sink that cannot open its file, a risk feed that
cannot bind) surfaces as a Rust panic and two tracebacks. So ``replay`` and ``run`` check
first, and raise :class:`ConfigError` (``cascadewatch`` exits 2) whose message names the
setting or file:

- ``[riskfeed] token_env``: the variable is set; ``[riskfeed] port``: nothing listens there;
- ``[alerts] outbox``: the file opens as an outbox (not corrupt, truncated or another
  program's; its directory writable; the disk not full);
- each output file (alerts, snapshots, dead letters): its directory exists or can be
  created, and is a writable directory.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable
from pathlib import Path

from cascadewatch.connectors.alerts.config import RiskFeedConfig, SecretMissing
from cascadewatch.connectors.alerts.outbox import Outbox, OutboxError
from cascadewatch.pipelines.config import Config, ConfigError


def check_startup(
    config: Config, *, deliver_alerts: bool, serve_riskfeed: bool, outputs: Iterable[Path | None] = ()
) -> None:
    """Raise :class:`ConfigError` (one line) for the first start-up failure found, if any."""
    if serve_riskfeed:
        check_riskfeed(config.riskfeed)
    if deliver_alerts:
        try:
            Outbox.check(config.alerts.outbox)
        except OutboxError as exc:
            raise ConfigError(f"[alerts] outbox: {exc}") from None
    for path in outputs:
        if path is not None:
            check_output(path)


def check_riskfeed(feed: RiskFeedConfig) -> None:
    """The token variable is set and the port is free (port 0: any free port, nothing to check)."""
    try:
        feed.resolve_token()
    except SecretMissing as exc:
        raise ConfigError(f"[riskfeed] token_env: {str(exc).removeprefix('riskfeed: ')}") from None
    if feed.port == 0:
        return
    try:
        infos = socket.getaddrinfo(feed.host, feed.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"[riskfeed] host: cannot resolve {feed.host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(address)
        except OSError as exc:
            why = "in use by another program" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise ConfigError(f"[riskfeed] port: cannot listen on {feed.host}:{feed.port}: {why}") from None


def check_output(path: Path) -> None:
    """``path``'s directory exists (or is created) and is writable; ``path`` is not a directory."""
    if path.is_dir():
        raise ConfigError(f"output {path}: is a directory, not a file")
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"output {path}: cannot create its directory: {exc.strerror or exc}") from None
    if not os.access(directory, os.W_OK):
        raise ConfigError(f"output {path}: its directory {directory} is not writable")
