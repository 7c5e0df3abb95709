"""Bounded names: sanitising caller-supplied names and capping how many distinct ones are kept.

Every tool, provider, model, cache and error-type name passes through a :class:`NameRegistry`
the first time it is seen. The outcome is documented and never an exception:

- ``None``, an empty string, or an object whose ``str()`` fails becomes ``"unknown"``;
- any other non-string is converted with ``str()``;
- every character that is not printable is replaced by ``"?"`` (see :func:`clean_text`):
  C0 and C1 controls, line and paragraph separators (U+2028, U+2029), bidirectional
  overrides and isolates (U+202A-U+202E, U+2066-U+2069), zero-width and other format
  characters (U+200B-U+200F, U+2060, U+FEFF), lone surrogates (not encodable as UTF-8), and
  unassigned code points; spaces other than U+0020 become U+0020;
- names longer than :data:`MAX_NAME_LENGTH` characters are cut to that length;
- once ``cap`` distinct names are kept, every new name folds into ``"_OTHER"`` (with one
  warning per registry), so memory and the JSON document stay bounded. ``"_OTHER"`` itself
  (what the MCP integrations record for names the server does not have) takes no slot.

Model names are capped per (provider, model) pair (:class:`PairRegistry`), not per name: the
document has one entry per pair, so a cap on names alone would let every provider hold every
model (``METRICS_MAX_PROVIDERS x METRICS_MAX_MODELS`` entries).
"""

from __future__ import annotations

import threading
import unicodedata
from typing import Final

from otel_perf import _semconv as n
from otel_perf._log import warn_once

MAX_NAME_LENGTH: Final = 256


def _clean_char(ch: str) -> str:
    if ch.isprintable():
        return ch
    return " " if unicodedata.category(ch) == "Zs" else "?"


def clean_text(text: str) -> str:
    """``text`` with every non-printable character replaced (see the module docstring).

    What reaches a terminal, a JSON document or a Prometheus label can then neither move the
    cursor, change colours, reorder what is shown (bidi overrides), hide characters (zero
    width), nor break a line.

    >>> clean_text("a\x1b[2Jb\u202ec\u200bd\u2028e\x85f\u00a0g")
    'a?[2Jb?c?d?e?f g'
    """
    if text.isprintable():
        return text
    return "".join(map(_clean_char, text))


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
    # Lone surrogates (category Cs) are not printable either: one in a name would make every
    # Prometheus scrape and OTLP export fail, so they become "?" too.
    text = clean_text(text)
    return text or n.UNKNOWN


class NameRegistry:
    """The set of distinct names of one kind, capped at ``cap``."""

    def __init__(self, kind: str, cap: int) -> None:
        self.kind = kind
        self.cap = cap
        self._kept: set[str] = set()
        # Reentrant: a signal handler may record a new name while the code it interrupted
        # holds this lock; the section below is safe to re-enter (set operations only).
        self._lock = threading.RLock()

    def after_fork(self) -> None:
        """In a forked child: a lock another thread held at the fork stays held; replace it."""
        self._lock = threading.RLock()

    def resolve(self, raw: object) -> str:
        """Sanitise ``raw`` and return it, or ``"_OTHER"`` once the cap is reached."""
        name = sanitize(raw)
        if name in self._kept or name == n.OTHER:  # "_OTHER" never takes a real name's place
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


class PairRegistry:
    """Distinct (owner, name) pairs, capped at ``cap``: a model is kept per provider.

    The owner is already resolved (a provider name or ``"_OTHER"``). Past the cap a new pair's
    name folds into ``"_OTHER"`` under its owner, so each owner has at most one extra entry.
    """

    def __init__(self, kind: str, cap: int) -> None:
        self.kind = kind
        self.cap = cap
        self._kept: set[tuple[str, str]] = set()
        self._lock = threading.RLock()  # reentrant for the same reason as NameRegistry's

    def after_fork(self) -> None:
        """In a forked child: a lock another thread held at the fork stays held; replace it."""
        self._lock = threading.RLock()

    def resolve(self, owner: str, raw: object) -> str:
        """Sanitise ``raw`` and return it, or ``"_OTHER"`` once ``cap`` pairs are kept."""
        name = sanitize(raw)
        pair = (owner, name)
        if pair in self._kept or name == n.OTHER:
            return name
        with self._lock:
            if pair in self._kept:
                return name
            if len(self._kept) < self.cap:
                self._kept.add(pair)
                return name
        warn_once(
            f"cap:{self.kind}",
            "otel-perf: more than %d distinct (provider, %s) pairs; further %s names are counted "
            "under %r (raise the cap with METRICS_MAX_MODELS)",
            self.cap,
            self.kind,
            self.kind,
            n.OTHER,
        )
        return n.OTHER

    def __len__(self) -> int:
        return len(self._kept)
