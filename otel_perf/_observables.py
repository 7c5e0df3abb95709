"""Observable instruments whose callbacks follow the current pipeline.

The SDK keeps the callbacks an observable instrument was created with for as long as its
``MeterProvider`` lives, and creating the same instrument again hands back the first one,
callbacks and all. On otel-perf's own provider that never matters: a new pipeline brings a new
provider. On the application's provider, which outlives otel-perf's restarts and resets, the
instruments would go on reporting a retired recorder, and the new recorder's values would never
be read. So each observable instrument is created once per provider, with a callback that reads
whatever the current owner registered under its name (:class:`Relay`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import Literal

from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

from otel_perf import _state

Callback = Callable[[CallbackOptions], Iterable[Observation]]
Kind = Literal["counter", "up_down_counter", "gauge"]


class Relay:
    """The observable instruments of one provider, each pointing at its current owner."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._created: set[tuple[str, str]] = set()
        self._targets: dict[tuple[str, str], tuple[object, Callback]] = {}

    def observe(
        self,
        meter: Meter,
        kind: Kind,
        name: str,
        callback: Callback,
        *,
        owner: object,
        unit: str,
        description: str,
    ) -> None:
        """Make ``callback`` (of ``owner``) the one read for ``name`` in ``meter``'s scope."""
        key = (meter.name, name)
        with self._lock:
            self._targets[key] = (owner, callback)
            if key in self._created:
                return
            self._created.add(key)
        relayed = [functools.partial(self._call, key)]
        if kind == "counter":
            meter.create_observable_counter(
                name, callbacks=relayed, unit=unit, description=description
            )
        elif kind == "up_down_counter":
            meter.create_observable_up_down_counter(
                name, callbacks=relayed, unit=unit, description=description
            )
        else:
            meter.create_observable_gauge(
                name, callbacks=relayed, unit=unit, description=description
            )

    def release(self, owner: object) -> None:
        """``owner`` retires: its instruments report nothing until a new owner registers."""
        with self._lock:
            for key in [k for k, (o, _cb) in self._targets.items() if o is owner]:
                del self._targets[key]

    def _call(self, key: tuple[str, str], options: CallbackOptions) -> Iterable[Observation]:
        target = self._targets.get(key)
        return () if target is None else target[1](options)


def relay_for(provider: MeterProvider) -> Relay:
    """The relay of the application's ``provider``, created on first use and kept with it."""
    with _state.relays_lock:
        relay = _state.relays.get(provider)
        if not isinstance(relay, Relay):
            relay = _state.relays[provider] = Relay()
        return relay


__all__ = ["Callback", "Relay", "relay_for"]
