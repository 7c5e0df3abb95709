"""The command-line edge: ``otel-perf top|snapshot|demo|run``.

Never imported by ``import otel_perf`` (a test checks ``sys.modules``).
"""
