"""The ``window`` stage: keyed sliding windows over a stream of cases, for rules that need
cross-case state ("negative news about a sector surged in the last hour").

    - stage: window
      with: {key: knowledge.properties.inSector, when: "sentiment.label == 'negative'", size: 20}

Each case adds one event per key (the ``key`` expression may give one value or a list; null
adds nothing) to that key's window, and the stage writes one ``window`` fact per key with the
window's ``count``, ``hits`` (events whose ``when`` held), ``rate``, the same two figures before
this case (``previous_hits``, ``previous_count``), a one-line ``text`` for explanations, and the
``evidence``: the most recent hits, each with its case id, text and time. Windows hold the last
``size`` events of a key (by arrival) or the events of the last ``seconds`` of event time (by
the ``time`` expression, e.g. ``fields.ts``: epoch seconds or ISO text; naive text is UTC).

Ordering: updates are atomic (one lock), so each case sees a consistent window that includes
itself and every case that reached the stage before it. Under ``run_batch(concurrency > 1)`` or
several threads, cases reach the stage in the order their earlier stages finish, not in input
order. Count windows then depend on that order. A time window always covers ``(end - seconds,
end]`` where ``end`` is the newest time seen for the key, so a case that arrives late (``late``)
still joins, and completes, the window it belongs to; one older than ``end - seconds`` is not
counted (``counted: false``). The final windows do not depend on arrival order, the figures
reported along the way may. Replay with ``concurrency=1`` when every intermediate figure must
be reproducible. The state
lives in the stage instance, so never put ``cache: true`` on a window stage; ``reset()`` clears it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._expr import compile_expression
from .._facts import Fact, FactView, NewFact
from .._plugins import active_plugins
from .._run import route_env
from .._stage import BaseStage

__all__ = ["WindowStage"]

_CONTEXT = frozenset({"text", "fields", "case", "facts"})


@dataclass(frozen=True, slots=True)
class _Event:
    case: str
    text: str
    hit: bool
    at: float  # the time field, or the arrival number for count windows
    seq: int


class WindowStage(BaseStage):
    """Keyed sliding windows by count (``size``) or by time (``seconds`` + ``time``)."""

    blocking = False
    cost = 0.1

    def __init__(self, *, key: str, when: str | None = None, size: int | None = None,
                 seconds: float | None = None, time: str | None = None, evidence: int = 10,
                 output: str = "window", name: str | None = None) -> None:
        _check_shape(size, seconds, time, evidence)
        super().__init__(key=key, when=when, size=size, seconds=seconds, time=time,
                         evidence=evidence, output=output, name=name)
        functions = dict(active_plugins().rule_functions.items())
        self._key = compile_expression(key, functions=functions)
        self._when = compile_expression(when, functions=functions) if when else None
        self._time = compile_expression(time, functions=functions) if time else None
        exprs = [e for e in (self._key, self._when, self._time) if e is not None]
        self._kinds = sorted({n for e in exprs for n in e.names} - _CONTEXT)
        self.requires = ("input", *self._kinds)
        self.produces = (output,)
        self.name = name or output
        self._lock = threading.Lock()
        self._windows: dict[Hashable, deque[_Event]] = {}
        self._seq = 0

    def reset(self, key: Hashable | None = None) -> None:
        """Forget every window (or one key's): ``stage.reset()`` before replaying a stream."""
        with self._lock:
            if key is None:
                self._windows.clear()
            else:
                self._windows.pop(key, None)

    def snapshot(self) -> dict[Hashable, dict[str, Any]]:
        """The current figures of every key, for dashboards: ``{key: {count, hits, rate}}``."""
        with self._lock:
            return {k: _figures(list(w)) for k, w in self._windows.items()}

    def process(self, view: FactView) -> list[NewFact]:
        env = route_env(view)
        keys = _keys(self._key(env))
        if not keys:
            return []
        hit = bool(self._when(env)) if self._when is not None else True
        at = self._timestamp(env, view) if self._time is not None else None
        evidence = _evidence_facts(view, self._kinds)
        with self._lock:
            rows = [self._add(k, view.case.id, view.case.text, hit, at) for k in keys]
        return [NewFact(self.params["output"], data, derived_from=evidence,
                        source=f"window:{self.name}") for data in rows]

    def _timestamp(self, env: Mapping[str, Any], view: FactView) -> float:
        assert self._time is not None
        value = _seconds(self._time(env))
        if value is None:
            raise ValueError(f"window {self.name!r}: case {view.case.id!r} has no usable time at "
                             f"{self.params['time']!r} (give epoch seconds or ISO text)")
        return value

    def _add(self, key: Hashable, case: str, text: str, hit: bool, at: float | None) -> dict[
            str, Any]:
        self._seq += 1
        event = _Event(case, text, hit, self._seq if at is None else at, self._seq)
        if self.params["size"] is not None:
            return self._add_counted(key, event)
        return self._add_timed(key, event)

    def _add_counted(self, key: Hashable, event: _Event) -> dict[str, Any]:
        window = self._windows.setdefault(key, deque(maxlen=int(self.params["size"])))
        before = _figures(list(window))
        window.append(event)
        return self._row(key, list(window), before, event, late=False)

    def _add_timed(self, key: Hashable, event: _Event) -> dict[str, Any]:
        # The window ends at the newest time seen for the key (its watermark), so a case that
        # arrives late still completes the window it belongs to; one older than that is dropped.
        span = float(self.params["seconds"])
        window = self._windows.setdefault(key, deque())
        events = list(window)
        late = bool(events) and event.at < events[-1].at
        counted = not events or event.at > events[-1].at - span
        before = _figures(events)
        if counted:
            bisect.insort(events, event, key=lambda e: (e.at, e.seq))
        end = events[-1].at
        kept = [e for e in events if e.at > end - span]
        self._windows[key] = deque(kept)
        row = self._row(key, kept, before, event, late=late)
        row.update(start=end - span, end=end, counted=counted)
        return row

    def _row(self, key: Hashable, events: list[_Event], before: Mapping[str, Any],
             event: _Event, *, late: bool) -> dict[str, Any]:
        hits = [e for e in events if e.hit][::-1][: int(self.params["evidence"])]
        figures = _figures(events)
        # `text` is what an explanation shows for this fact.
        text = f"{key}: {figures['hits']} hit(s) in {figures['count']}"
        return {"window": self.name, "key": key, "text": text, **figures,
                "previous_hits": before["hits"], "previous_count": before["count"],
                "hit": event.hit, "late": late, "size": self.params["size"],
                "seconds": self.params["seconds"],
                "evidence": [{"case": e.case, "text": e.text, "at": e.at} for e in hits]}


def _check_shape(size: int | None, seconds: float | None, time: str | None,
                 evidence: int) -> None:
    if (size is None) == (seconds is None):
        raise ValueError("window: give exactly one of size (a count window) or seconds "
                         "(a time window, with time: e.g. fields.ts)")
    if size is not None and size < 1:
        raise ValueError(f"window: size must be >= 1, got {size}")
    if seconds is not None and (seconds <= 0 or not time):
        raise ValueError("window: seconds must be > 0 and needs time: (e.g. fields.ts)")
    if size is not None and time:
        raise ValueError("window: time: only applies to a time window (seconds:), not size:")
    if evidence < 0:
        raise ValueError(f"window: evidence must be >= 0, got {evidence}")


def _figures(events: list[_Event]) -> dict[str, Any]:
    hits = sum(e.hit for e in events)
    return {"count": len(events), "hits": hits,
            "rate": hits / len(events) if events else 0.0}


def _keys(value: Any) -> list[Hashable]:
    values: Iterable[Any] = value if isinstance(value, (list, tuple)) else [value]
    out: list[Hashable] = []
    for item in values:
        if item is not None and item not in out:
            out.append(item if isinstance(item, Hashable) else str(item))
    return out


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if parsed.tzinfo is None:  # naive text is read as UTC, never as the machine's zone
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.timestamp()
    return None


def _evidence_facts(view: FactView, kinds: list[str]) -> list[Fact]:
    root = view.last("input")
    facts = [f for kind in kinds if (f := view.last(kind)) is not None]
    return ([root] if root is not None else []) + facts
