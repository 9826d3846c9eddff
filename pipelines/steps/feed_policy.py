"""Feed alerts: a venue instrument whose data cannot be trusted pages like a cascade does.

Per venue instrument, from the ``feed`` entries of its :class:`~cascadewatch.pipelines.steps.items.InstrumentState`:

- trigger (``warning``) on the first ``gap``, ``disconnect``, ``stale``, ``error``,
  ``interrupted`` (frames dropped, a connection without the book closed) or ``invalid`` (the
  book waited for a snapshot longer than ``[live] book_alert_s``; the entry names the cause:
  HTTP status, timeout, queue drops);
- resolve at the first later second with no such entry whose book is valid again (or, for a
  stream that never had a valid book, that simply has data again). An incident opened by a
  ``gap`` or an ``invalid`` book resolves only on a valid book.

``dedup_key = "<asset>:feed:<venue>"``; ``direction`` is ``null``: a feed problem has none.
Ids come from content (:func:`~cascadewatch.connectors.outputs.alert_id`), as for cascade alerts.
"""

from __future__ import annotations

from cascadewatch.connectors.outputs import Alert, alert_id
from cascadewatch.pipelines.steps.items import InstrumentState

PROBLEM_STATES = ("gap", "disconnect", "stale", "error", "interrupted", "invalid")
BOOK_PROBLEMS = ("gap", "invalid")
"""Incidents that only a valid book resolves."""


def _problems(state: InstrumentState) -> list[str]:
    return [entry for entry in state.feed if entry.split(":", 1)[0] in PROBLEM_STATES]


class FeedPolicy:
    """Open/resolve feed incidents for every venue instrument of one asset."""

    def __init__(self, asset: str) -> None:
        self.asset = asset
        self.open: dict[str, tuple[int, str]] = {}
        """venue|instrument -> (opened_ts ms, first problem)."""
        self.had_book: set[str] = set()

    def update(self, second_ms: int, states: list[InstrumentState]) -> list[Alert]:
        """The feed alerts of second ``second_ms`` (ms).

        A trigger when an instrument's feed goes bad, a resolve when it recovers.
        """
        alerts = []
        for state in states:
            key = f"{state.venue}|{state.instrument}"
            problems = _problems(state)
            if state.book_valid:
                self.had_book.add(key)
            incident = self.open.get(key)
            if problems and incident is None:
                self.open[key] = (second_ms, problems[0])
                alerts.append(self._alert(state, second_ms, "trigger", second_ms, problems[0]))
            elif incident is not None and not problems and (state.book_valid or not self._needs_book(key, incident[1])):
                del self.open[key]
                opened_ts, problem = incident
                alerts.append(self._alert(state, second_ms, "resolve", opened_ts, problem))
        return alerts

    def _needs_book(self, key: str, problem: str) -> bool:
        """Whether only a valid book resolves this incident."""
        return key in self.had_book or problem.split(":", 1)[0] in BOOK_PROBLEMS

    def _alert(self, state: InstrumentState, ts: int, action: str, opened_ts: int, problem: str) -> Alert:
        dedup_key = f"{self.asset}:feed:{state.venue}"
        severity = "warning"
        if action == "trigger":
            summary = f"{state.venue} {state.instrument}: feed problem, {problem}"
        else:
            summary = (
                f"{state.venue} {state.instrument}: feed healthy again after {(ts - opened_ts) / 1000:.0f}s ({problem})"
            )
        return Alert(
            id=alert_id(dedup_key, opened_ts, action, severity),
            dedup_key=dedup_key,
            action=action,
            severity=severity,
            kind="feed",
            asset=self.asset,
            direction=None,
            ts=ts,
            summary=summary,
            opened_ts=opened_ts,
            venue=state.venue,
            instrument=state.instrument,
            problem=problem,
        )
