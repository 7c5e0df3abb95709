"""otel-perf's logger, and a warn-once helper so a misbehaving caller cannot flood the logs."""

from __future__ import annotations

import logging
import os
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


def _reinit_after_fork() -> None:
    # Another thread may have held the lock at fork(); in the child nobody would release it.
    global _warned_lock
    _warned_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


def reset_warnings() -> None:
    """Forget which warnings were given (for tests and ``reset_metrics()``)."""
    with _warned_lock:
        _warned.clear()
