"""The errors reading the metrics can raise, in a module of their own: the endpoint and the
``Metrics`` handle refer to them before OpenTelemetry's SDK is loaded (see otel_perf._metrics)."""

from __future__ import annotations


class CollectionError(RuntimeError):
    """Reading the metrics failed (the SDK's collect raised). Recording is unaffected."""


class NestedCollectionError(RuntimeError):
    """A collection was asked for from inside one (an observable callback, a signal handler)."""


__all__ = ["CollectionError", "NestedCollectionError"]
