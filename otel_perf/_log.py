"""otel-perf's logger, and a warn-once helper so a misbehaving caller cannot flood the logs."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("otel_perf")

_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(key: str, message: str, *args: object) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process.

    ``key`` must come from a fixed set of categories (never from caller data), so the set of
    keys stays bounded.
    """
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(message, *args)


def reset_warnings() -> None:
    """Forget which warnings were given (for tests and ``reset_metrics()``)."""
    with _warned_lock:
        _warned.clear()
