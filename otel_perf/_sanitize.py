"""Bounded names: sanitising caller-supplied names and capping how many distinct ones are kept.

Every tool, provider, model, cache and error-type name passes through a :class:`NameRegistry`
the first time it is seen. The outcome is documented and never an exception:

- ``None``, an empty string, or an object whose ``str()`` fails becomes ``"unknown"``;
- any other non-string is converted with ``str()``;
- control characters and lone surrogates (not encodable as UTF-8) are replaced by ``"?"``;
- names longer than :data:`MAX_NAME_LENGTH` characters are cut to that length;
- once ``cap`` distinct names are kept, every new name folds into ``"_OTHER"`` (with one
  warning per registry), so memory and the JSON document stay bounded.
"""

from __future__ import annotations

import threading
from typing import Final

from otel_perf import _semconv as n
from otel_perf._log import warn_once

MAX_NAME_LENGTH: Final = 256

_CONTROL: Final = dict.fromkeys((*range(32), 127), "?")


def sanitize(raw: object) -> str:
    """The name otel-perf records for a caller-supplied ``raw`` name (see module docstring)."""
    if raw is None:
        return n.UNKNOWN
    if type(raw) is str:
        text = raw
    elif isinstance(raw, str):
        # A str subclass may override hashing or equality; keep a plain copy of its text.
        text = str.__str__(raw)
    else:
        try:
            text = str(raw)
        except Exception:  # a caller's broken __str__ must not reach the caller as our error
            return n.UNKNOWN
    if len(text) > MAX_NAME_LENGTH:
        text = text[:MAX_NAME_LENGTH]
    if not text.isprintable():
        text = text.translate(_CONTROL)
        # Lone surrogates cannot be encoded as UTF-8: one in a name would make every
        # Prometheus scrape and OTLP export fail, so they become "?" too.
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text or n.UNKNOWN


class NameRegistry:
    """The set of distinct names of one kind, capped at ``cap``."""

    def __init__(self, kind: str, cap: int) -> None:
        self.kind = kind
        self.cap = cap
        self._kept: set[str] = set()
        self._lock = threading.Lock()

    def resolve(self, raw: object) -> str:
        """Sanitise ``raw`` and return it, or ``"_OTHER"`` once the cap is reached."""
        name = sanitize(raw)
        if name in self._kept:
            return name
        with self._lock:
            if name in self._kept:
                return name
            if len(self._kept) < self.cap:
                self._kept.add(name)
                return name
        warn_once(
            f"cap:{self.kind}",
            "otel-perf: more than %d distinct %s names; further ones are counted under %r "
            "(raise the cap with the matching METRICS_MAX_* variable)",
            self.cap,
            self.kind,
            n.OTHER,
        )
        return n.OTHER

    def __len__(self) -> int:
        return len(self._kept)
