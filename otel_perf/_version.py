"""The version of otel-perf.

Kept in one file so hatchling can read it at build time; at run time
``otel_perf.__version__`` comes from the installed package metadata.
"""

__version__ = "0.1.0"
