"""otel-perf's logger, and a warn-once helper so a misbehaving caller cannot flood the logs."""

from __future__ import annotations

import logging

from otel_perf import _state

logger = logging.getLogger("otel_perf")


def warn_once(key: str, message: str, *args: object) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process.

    ``key`` must come from a fixed set of categories (never from caller data), so the set of
    keys stays bounded.
    """
    with _state.warned_lock:
        if key in _state.warned:
            return
        _state.warned.add(key)
    logger.warning(message, *args)
