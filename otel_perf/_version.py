"""The version of otel-perf.

Kept in one file so hatchling reads it at build time (the package metadata's version) and
``otel_perf.__version__`` reads it at run time: the same string, without the cost of
``importlib.metadata`` (tens of milliseconds) at import.
"""

__version__ = "0.1.0"
