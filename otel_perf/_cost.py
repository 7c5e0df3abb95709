"""What the LLM calls cost: reported token counts priced with genai-prices, off the hot path.

Where the work happens, and why:

- On the record path, a provider call that reports tokens appends (provider, model, input,
  output) to one buffer: one ``deque.append``, no lock (a signal handler that records while the
  interrupted code was recording must not wait on it). No pricing, and no import of
  ``genai-prices`` (about 30 MB and a third of a second to load).
- At collect time, the callback of the ``otel_perf.gen_ai.client.cost`` observable counter
  drains the buffers and prices them; the JSON view, Prometheus and OTLP all read that counter.

Why each call is priced, not the token totals: a price can depend on the call. Tiered prices
charge the whole call at a higher rate once its input passes a threshold (200,000 tokens for
several models), and some models charge per request. Within a tier a model's price is linear
in the tokens, so a call only needs its tier (one bisect on the thresholds) and the sums per
tier; the rate per tier comes from ``genai_prices.calc_price`` itself, once per model. The sum
is exact: equal, in ``Decimal``, to ``calc_price`` summed over the calls.

What has no cost (``null`` in the JSON view; no point of the counter), never a guessed one: a
provider or model the catalogue does not know, and every model while ``genai-prices`` is not
installed (the ``cost`` extra; it needs Python 3.11+). Prices are the catalogue's (the one
bundled with the installed ``genai-prices``; otel-perf never runs its updater) as in force when
the collection runs, at most one collection interval after the call.

Memory is bounded: the buffer holds at most :data:`MAX_PENDING_CALLS` calls between two
collections (about 12 MB; the endpoint's history thread collects every few seconds). A model
with a call past that bound gets no cost from then on (one warning): a cost that leaves calls
out would be a wrong figure.
"""

from __future__ import annotations

import bisect
import importlib
import threading
import time
from collections import deque
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from otel_perf import _semconv as n
from otel_perf._log import logger, warn_once

#: Calls one (provider, model) buffer holds between two collections before it sums the rest.
MAX_PENDING_CALLS: Final = 100_000

#: How long a model's resolved price is reused before the catalogue is asked again (prices
#: with a start date change while a process runs).
RULE_TTL_S: Final = 3600.0

if TYPE_CHECKING:  # decimal is imported when something is priced, not with otel_perf
    from decimal import Decimal

    from opentelemetry.metrics import CallbackOptions, Observation


def sum_start() -> Decimal:
    """Zero dollars, as a ``Decimal`` (imported here, at the first pricing)."""
    from decimal import Decimal  # noqa: PLC0415

    return Decimal(0)


class Rule(NamedTuple):
    """A model's price as ``a + b * input + c * output`` per tier of the call's input tokens.

    ``starts[i]`` is the threshold of tier ``i + 1``: a call with more input tokens than it
    pays that tier's rates (genai-prices' rule), so ``bisect_left`` finds a call's tier.
    """

    starts: tuple[int, ...]
    rates: tuple[tuple[Decimal, Decimal, Decimal], ...]

    def tier(self, input_tokens: int) -> int:
        return bisect.bisect_left(self.starts, input_tokens) if self.starts else 0

    def price_calls(self, calls: Iterable[tuple[int, int]]) -> Decimal:
        """The cost of ``calls``, each (input tokens, output tokens)."""
        sums = [[0, 0, 0] for _ in self.rates]  # calls, input, output per tier
        for input_tokens, output_tokens in calls:
            tier = sums[self.tier(input_tokens)]
            tier[0] += 1
            tier[1] += input_tokens
            tier[2] += output_tokens
        total = sum_start()
        for (a, b, c), (count, inputs, outputs) in zip(self.rates, sums, strict=True):
            if count:
                total += a * count + b * inputs + c * outputs
        return total


def resolve_rule(prices: ModuleType, provider: str, model: str) -> Rule | None:
    """The model's :class:`Rule` from the catalogue, or ``None`` if it has no price there."""
    from genai_prices.types import TieredPrices  # noqa: PLC0415 - optional dependency

    def cost(input_tokens: int, output_tokens: int) -> Decimal:
        usage = prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        total: Decimal = prices.calc_price(usage, model, provider_id=provider).total_price
        return total

    try:
        found = prices.calc_price(
            prices.Usage(input_tokens=0, output_tokens=0), model, provider_id=provider
        )
    except LookupError:
        return None
    starts = sorted(
        {
            tier.start
            for value in vars(found.model_price).values()
            if isinstance(value, TieredPrices)
            for tier in value.tiers
        }
    )
    rates = []
    for index in range(len(starts) + 1):
        at = 0 if index == 0 else starts[index - 1] + 1  # the fewest input tokens of the tier
        base = cost(at, 0)
        per_input = cost(at + 1, 0) - base
        per_output = cost(at, 1) - base
        rates.append((base - per_input * at, per_input, per_output))
    return Rule(tuple(starts), tuple(rates))


class CostLedger:
    """Token counts of one recorder, priced when collected (see the module docstring)."""

    def __init__(self) -> None:
        #: Calls not priced yet: ((provider, model), input tokens, output tokens).
        self._pending: deque[tuple[tuple[str, str], int, int]] = deque()
        self._overflowed: set[tuple[str, str]] = set()  # models with a call past the bound
        self._collect_lock = threading.Lock()  # one drain at a time (never on the record path)
        self._costs: dict[tuple[str, str], Decimal] = {}
        self._unpriced: set[tuple[str, str]] = set()
        self._rules: dict[tuple[str, str], tuple[float, Rule | None]] = {}
        self._prices: ModuleType | None = None
        self._prices_missing = False

    def add(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> None:
        """One call's token counts (the hot path: no pricing, no lock)."""
        if len(self._pending) < MAX_PENDING_CALLS:
            self._pending.append(((provider, model), input_tokens, output_tokens))
        else:
            self._overflowed.add((provider, model))

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        """The observable counter's callback: cumulative US dollars per priced model."""
        from opentelemetry.metrics import Observation  # noqa: PLC0415 - loaded by its caller

        with self._collect_lock:
            self._drain()
            return [
                Observation(float(cost), {n.GEN_AI_PROVIDER_NAME: p, n.GEN_AI_REQUEST_MODEL: m})
                for (p, m), cost in self._costs.items()
                if (p, m) not in self._unpriced
            ]

    def _drain(self) -> None:
        by_model: dict[tuple[str, str], list[tuple[int, int]]] = {}
        pending = self._pending
        while pending:  # popleft is atomic: a call appended meanwhile waits for the next drain
            try:
                key, input_tokens, output_tokens = pending.popleft()
            except IndexError:
                break
            by_model.setdefault(key, []).append((input_tokens, output_tokens))
        while self._overflowed:
            try:
                key = self._overflowed.pop()
            except KeyError:
                break
            warn_once(
                "cost-overflow",
                "otel-perf: more than %d LLM calls waited to be priced between two collections; "
                "a model that had calls left out has no cost from now on",
                MAX_PENDING_CALLS,
            )
            self._unpriced.add(key)
        for key, calls in by_model.items():
            if key in self._unpriced:
                continue
            rule = self._rule(key)
            if rule is None:
                self._unpriced.add(key)
                continue
            self._costs[key] = self._costs.get(key, sum_start()) + rule.price_calls(calls)

    def _rule(self, key: tuple[str, str]) -> Rule | None:
        now = time.monotonic()
        cached = self._rules.get(key)
        if cached is not None and now - cached[0] < RULE_TTL_S:
            return cached[1]
        prices = self._genai_prices()
        rule = None
        if prices is not None:
            try:
                rule = resolve_rule(prices, *key)
            except Exception as exc:  # a catalogue entry this code cannot read: no cost
                warn_once(
                    "cost-rule",
                    "otel-perf: could not read a price from genai-prices (%s); that model has "
                    "no cost",
                    type(exc).__name__,
                )
        self._rules[key] = (now, rule)
        return rule

    def _genai_prices(self) -> ModuleType | None:
        if self._prices is None and not self._prices_missing:
            try:
                self._prices = importlib.import_module("genai_prices")
            except ImportError:
                self._prices_missing = True
                logger.info(
                    "otel-perf: LLM token counts are reported but genai-prices is not "
                    "installed (pip install 'otel-perf[cost]', Python 3.11+): cost_usd stays "
                    "null"
                )
        return self._prices


def cost_usd(value: Any) -> float:
    """A cost as the JSON view shows it: US dollars, rounded to a millionth."""
    return round(float(value), 6)


__all__ = ["MAX_PENDING_CALLS", "CostLedger", "Rule", "cost_usd", "resolve_rule"]
