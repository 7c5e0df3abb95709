"""``python -m otel_perf``: the same as the ``otel-perf`` command."""

from otel_perf._cli.main import main

raise SystemExit(main())
