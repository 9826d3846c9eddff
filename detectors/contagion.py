"""Contagion across assets: one grouped alert when cascades begin in several assets at once.

The cross-margin and collateral kinds of cascade spread from one asset to others through
accounts that hold several: a cascade in one asset liquidates accounts whose pooled margin
it drains, and their positions in the other assets are sold too. Public venue data does not
show the accounts, but it shows the result: cascades (or high cascade probabilities) that
begin in several assets within minutes of each other. :class:`ContagionMonitor` watches
every asset's per-second state and raises one grouped alert for them.

Per asset and direction, an **episode** (the policy's hysteresis, :mod:`.policy`):

- it begins (its *onset*) at the first second the asset-direction *qualifies*: a cascade in
  progress of one of ``page_kinds``, or ``p >= warn_enter``;
- it is *hot* while a cascade of ``page_kinds`` is in progress or ``p >= warn_exit``;
- it ends at the first second it has been calm (not hot) for ``calm_s`` seconds (the first
  calm second counts as 0).

Per direction, a **group** (at most one open at a time):

- it opens at the first second when ``min_assets`` episodes not yet in a group have onsets
  within ``window_s`` of the earliest of them (the *origin*): onsets exactly ``window_s``
  apart group, ``window_s + 1`` do not. Among several candidate origins the earliest wins
  (ties by asset name);
- later episodes whose onset is at most ``window_s`` after the origin join it;
- severity: ``critical`` once ``min_assets`` of its members have had a cascade in progress,
  else ``warning``; there is no de-escalation;
- alerts: ``trigger`` when it opens, again when an asset joins (same ``dedup_key``, the
  summary and ``assets`` updated) and when it escalates; ``resolve`` at the second the last
  of its members' episodes ends.

``dedup_key = f"contagion:{direction}"`` (the group, not one asset); ``asset`` is the
origin's asset; ``assets`` lists the members in onset order: ``{"asset", "onset_ts",
"after_s", "cascade"}`` (``after_s``: seconds after the origin; ``cascade``: whether a
cascade was in progress at some second of its episode). ``id`` =
:func:`~cascadewatch.connectors.outputs.alert_id` of the key, the opening second, the action
and ``f"{severity}/{n members}"``, so a replay gives the same ids and each message is new.
The summary reads ``contagion: BTC-USDT down at 12:00:03, ETH-USDT down +41 s, SOL-USDT down
+77 s``. Times are event-time ms (UTC).

Deterministic: the monitor's output depends only on the sequence of seconds it is fed and,
within a second, not on the order of the assets (it sorts them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import msgspec

from cascadewatch.connectors.outputs import Alert, alert_id

__all__ = ["ContagionConfig", "ContagionMonitor", "AssetState"]

DIRECTIONS = ("down", "up")


class ContagionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[contagion]``: the grouped alert across assets (:class:`ContagionMonitor`).

    ``window_s``: onsets at most this many seconds after the group's first (its origin) group
    together; ``min_assets``: assets needed for a group (>= 2); ``enabled``: whether the step
    runs at all. The thresholds (``warn_enter``, ``warn_exit``, ``calm_s``, ``page_kinds``) are
    the alert policy's, from ``[detectors]``.
    """

    window_s: int = 300
    min_assets: int = 2
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.window_s < 0:
            raise ValueError("contagion: window_s must be >= 0")
        if self.min_assets < 2:
            raise ValueError("contagion: min_assets must be >= 2 (one asset is the cascade alert's job)")


class AssetState(msgspec.Struct, frozen=True):
    """One asset-direction at one second: ``prob`` (0..1, ``None``: unknown, counts as 0) and
    ``cascade``, the type of the cascade in progress (``None``: none)."""

    asset: str
    direction: str
    prob: float | None
    cascade: str | None


@dataclass(slots=True)
class _Episode:
    onset_ts: int
    cascade: bool
    calm_since: int | None = None
    grouped: bool = False


@dataclass(slots=True)
class _Group:
    origin_ts: int
    opened_ts: int
    severity: str
    members: list[tuple[int, str]] = field(default_factory=list)
    """``(onset_ts, asset)`` in onset order."""
    cascade: dict[str, bool] = field(default_factory=dict)
    """Per member: whether its episode has had a cascade in progress."""


def _clock(ms: int) -> str:
    """``HH:MM:SS`` (UTC) of an epoch time in ms."""
    s = ms // 1000 % 86400
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _dur(ms: int) -> str:
    s = max(ms // 1000, 0)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class ContagionMonitor:
    """Episodes per asset and direction, groups per direction (see the module doc).

    Parameters
    ----------
    config
        :class:`ContagionConfig`: ``window_s``, ``min_assets``.
    warn_enter, warn_exit
        Probability at which an episode begins / under which it is calm (``warn_exit < warn_enter``).
    calm_s
        Calm seconds that end an episode.
    page_kinds
        Types of cascade in progress that qualify by themselves.

    Examples
    --------
    >>> m = ContagionMonitor(ContagionConfig(window_s=60), warn_enter=0.3, warn_exit=0.15, calm_s=0)
    >>> def s(asset, p):
    ...     return AssetState(asset, "down", p, None)
    >>> m.update(0, [s("BTC-USDT", 0.5), s("ETH-USDT", 0.1)])
    []
    >>> [a.summary for a in m.update(30_000, [s("BTC-USDT", 0.5), s("ETH-USDT", 0.4)])]
    ['contagion: BTC-USDT down at 00:00:00, ETH-USDT down +30 s']
    >>> [a.action for a in m.update(31_000, [s("BTC-USDT", 0.1), s("ETH-USDT", 0.1)])]
    ['resolve']
    """

    def __init__(
        self,
        config: ContagionConfig = ContagionConfig(),  # noqa: B008 - a frozen struct: one shared default is safe
        warn_enter: float = 0.3,
        warn_exit: float = 0.15,
        calm_s: float = 60.0,
        page_kinds: tuple[str, ...] = ("deleveraging", "liquidity", "liquidation"),
    ) -> None:
        if not 0.0 <= warn_exit < warn_enter:
            raise ValueError("need 0 <= warn_exit < warn_enter")
        self.config = config
        self.window_ms = config.window_s * 1000
        self.warn_enter = float(warn_enter)
        self.warn_exit = float(warn_exit)
        self.calm_ms = int(round(calm_s * 1000))
        self.page_kinds = tuple(page_kinds)
        self.episodes: dict[tuple[str, str], _Episode] = {}
        """Open episodes by ``(direction, asset)``."""
        self.groups: dict[str, _Group] = {}
        """The open group of each direction."""

    def update(self, ts: int, states: list[AssetState]) -> list[Alert]:
        """Feed one second (``ts``, ms) of every asset that has one; returns its alerts (``down`` first)."""
        for state in sorted(states, key=lambda s: (s.direction, s.asset)):
            self._episode(ts, state)
        out: list[Alert] = []
        for direction in DIRECTIONS:
            out.extend(self._group(ts, direction))
        return out

    def _episode(self, ts: int, s: AssetState) -> None:
        p = s.prob if s.prob is not None and math.isfinite(s.prob) else 0.0
        in_cascade = s.cascade is not None and s.cascade in self.page_kinds
        key = (s.direction, s.asset)
        episode = self.episodes.get(key)
        if episode is None:
            if in_cascade or p >= self.warn_enter:
                self.episodes[key] = _Episode(onset_ts=ts, cascade=in_cascade)
            return
        episode.cascade = episode.cascade or in_cascade
        if in_cascade or p >= self.warn_exit:
            episode.calm_since = None
            return
        if episode.calm_since is None:
            episode.calm_since = ts
        if ts - episode.calm_since >= self.calm_ms:
            del self.episodes[key]

    def _open_members(self, direction: str) -> list[tuple[int, str]]:
        """Open episodes of ``direction`` not yet in a group, as ``(onset_ts, asset)``, sorted."""
        return sorted(
            (e.onset_ts, asset) for (d, asset), e in self.episodes.items() if d == direction and not e.grouped
        )

    def _group(self, ts: int, direction: str) -> list[Alert]:
        group = self.groups.get(direction)
        if group is None:
            return self._try_open(ts, direction)
        out: list[Alert] = []
        joined = []
        known = {asset for _, asset in group.members}
        for onset, asset in self._open_members(direction):
            if onset <= group.origin_ts + self.window_ms:
                self.episodes[(direction, asset)].grouped = True
                if asset not in known:  # a member's new episode keeps the group open, it does not rejoin
                    joined.append((onset, asset))
        group.members.extend(joined)
        self._note_cascades(direction, group)
        severity = self._severity(group)
        if joined or severity != group.severity:
            group.severity = severity
            out.append(self._alert(ts, direction, group, "trigger"))
        if not any((direction, asset) in self.episodes for _, asset in group.members):
            out.append(self._alert(ts, direction, group, "resolve"))
            del self.groups[direction]
        return out

    def _try_open(self, ts: int, direction: str) -> list[Alert]:
        candidates = self._open_members(direction)
        for i, (origin, _) in enumerate(candidates):
            members = [m for m in candidates[i:] if m[0] - origin <= self.window_ms]
            if len(members) >= self.config.min_assets:
                group = _Group(origin_ts=origin, opened_ts=ts, severity="warning", members=members)
                for _, asset in members:
                    self.episodes[(direction, asset)].grouped = True
                self._note_cascades(direction, group)
                group.severity = self._severity(group)
                self.groups[direction] = group
                return [self._alert(ts, direction, group, "trigger")]
        return []

    def _note_cascades(self, direction: str, group: _Group) -> None:
        for _, asset in group.members:
            episode = self.episodes.get((direction, asset))
            if episode is not None and episode.cascade:
                group.cascade[asset] = True

    def _severity(self, group: _Group) -> str:
        """``critical`` once ``min_assets`` members have had a cascade in progress (never back)."""
        if group.severity == "critical" or sum(group.cascade.values()) >= self.config.min_assets:
            return "critical"
        return "warning"

    def _alert(self, ts: int, direction: str, group: _Group, action: str) -> Alert:
        key = f"contagion:{direction}"
        n = len(group.members)
        origin = group.origin_ts
        names = [f"{group.members[0][1]} {direction} at {_clock(origin)}"]
        names.extend(f"{asset} {direction} +{(onset - origin) // 1000} s" for onset, asset in group.members[1:])
        summary = "contagion: " + ", ".join(names)
        if action == "resolve":
            summary += f": resolved (was {group.severity} for {_dur(ts - group.opened_ts)})"
        return Alert(
            id=alert_id(key, group.opened_ts, action, f"{group.severity}/{n}"),
            dedup_key=key,
            action=action,
            severity=group.severity,
            kind="contagion",
            asset=group.members[0][1],
            direction=direction,
            ts=ts,
            summary=summary,
            opened_ts=group.opened_ts,
            assets=[
                {
                    "asset": asset,
                    "onset_ts": onset,
                    "after_s": (onset - origin) // 1000,
                    "cascade": group.cascade.get(asset, False),
                }
                for onset, asset in group.members
            ],
        )
