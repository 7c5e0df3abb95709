"""genai-prices (tens of MB) is loaded only when a collection prices reported tokens."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.support.servers import harness

# genai-prices exists for Python 3.11+ only, and the dev extra installs it there: on 3.11+ a
# missing package is a broken environment, which must fail rather than skip.
if sys.version_info < (3, 11):
    pytest.skip("the cost extra needs Python 3.11+", allow_module_level=True)
import genai_prices  # noqa: F401

SCRIPT = textwrap.dedent(
    """
    import sys
    import otel_perf
    assert "genai_prices" not in sys.modules, "imported by import otel_perf"
    otel_perf.configure(json_enabled=False)
    otel_perf.record_provider_call("openai", True, 5.0, model="gpt-4o")
    otel_perf.get_all_metrics()
    assert "genai_prices" not in sys.modules, "imported without any token count"
    otel_perf.record_provider_call(
        "openai", True, 5.0, model="gpt-4o", input_tokens=10, output_tokens=10
    )
    assert "genai_prices" not in sys.modules, "imported on the record path"
    cost = otel_perf.get_all_metrics()["provider_metrics"]["openai"]["cost_usd"]
    assert "genai_prices" in sys.modules
    print(cost)
    """
)


def test_genai_prices_is_imported_only_when_tokens_are_priced() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=harness.child_env({}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert float(ran.stdout) > 0
