"""The one JSON encoding otel-perf serves: compact, strict (no NaN or infinity), UTF-8 bytes."""

from __future__ import annotations

import json
from typing import Any


def to_json_bytes(payload: Any) -> bytes:
    """``payload`` as compact JSON bytes; raises ``ValueError`` for NaN or infinity."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
