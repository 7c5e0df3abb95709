"""The HTTP edge: the in-process endpoint, its routes, the dashboard and the Prometheus text.

Nothing here is imported until the endpoint starts (``Metrics`` imports :mod:`.routes` lazily).
"""
