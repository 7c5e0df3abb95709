// otel-perf dashboard. Polls the JSON document (./metrics) and the trend ring
// (./metrics/history) of the server that served this page; relative URLs, so it works on any
// host, port or path prefix. Names (tools, caches, providers, error types) are untrusted input:
// they only ever reach the page through textContent and setAttribute, never as HTML.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const TOKEN_KEY = "otel-perf.token";
  const THRESHOLD_KEY = "otel-perf.p95-threshold";
  const REFRESH_KEY = "otel-perf.refresh";
  const SORT_KEY = "otel-perf.sort";
  const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

  const $ = (id) => document.getElementById(id);

  function storageGet(storage, key) {
    try {
      return storage.getItem(key);
    } catch (_err) {
      return null; // storage can be switched off; the page works without it
    }
  }

  function storageSet(storage, key, value) {
    try {
      if (value === null) storage.removeItem(key);
      else storage.setItem(key, value);
    } catch (_err) {
      // ignore: nothing to persist to
    }
  }

  function initialRefreshSeconds() {
    const fromQuery = Number(new URLSearchParams(window.location.search).get("refresh"));
    if (Number.isFinite(fromQuery) && fromQuery > 0) return Math.min(Math.max(fromQuery, 0.2), 300);
    const stored = Number(storageGet(window.localStorage, REFRESH_KEY));
    return Number.isFinite(stored) && stored > 0 ? stored : 5;
  }

  function initialSort() {
    try {
      const saved = JSON.parse(storageGet(window.localStorage, SORT_KEY) || "null");
      if (saved && typeof saved.key === "string" && (saved.dir === 1 || saved.dir === -1)) return saved;
    } catch (_err) {
      // a malformed saved value: use the default
    }
    return { key: "p95_latency_ms", dir: -1 };
  }

  const state = {
    doc: null,
    samples: [],
    historyInterval: 5,
    historyCapacity: 720,
    startTime: null,
    token: storageGet(window.sessionStorage, TOKEN_KEY) || "",
    threshold: Number(storageGet(window.localStorage, THRESHOLD_KEY) || "500"),
    refreshSeconds: initialRefreshSeconds(),
    sort: initialSort(),
    refreshes: 0,
    timer: null,
    inFlight: false,
  };

  class AuthError extends Error {}

  // --- fetching ---------------------------------------------------------------------------------

  async function getJSON(url) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    const response = await fetch(url, { headers, cache: "no-store", credentials: "same-origin" });
    if (response.status === 401) throw new AuthError("unauthorized");
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }

  function looksLikeDocument(doc) {
    return (
      doc !== null &&
      typeof doc === "object" &&
      typeof doc.enabled === "boolean" &&
      typeof doc.tool_metrics === "object" &&
      typeof doc.system_metrics === "object"
    );
  }

  async function refresh() {
    if (state.inFlight) return;
    state.inFlight = true;
    try {
      const doc = await getJSON("metrics");
      if (!looksLikeDocument(doc)) throw new Error("not an otel-perf document");
      await refreshHistory(doc);
      state.doc = doc;
      render();
      $("token-form").hidden = true;
      const when = new Date((doc.timestamp || Date.now() / 1000) * 1000);
      setStatus("ok", "live · updated " + when.toLocaleTimeString([], { hour12: false }));
      state.refreshes += 1;
      document.body.dataset.refreshes = String(state.refreshes);
    } catch (err) {
      if (err instanceof AuthError) {
        setStatus("auth", state.token ? "token rejected" : "token needed");
        $("token-form").hidden = false;
        $("token").focus();
      } else {
        setStatus("error", "cannot read ./metrics · retrying");
      }
    } finally {
      state.inFlight = false;
      schedule();
    }
  }

  async function refreshHistory(doc) {
    const start = doc.system_metrics ? doc.system_metrics.start_time : null;
    if (start !== state.startTime) {
      // A new start time means reset_metrics() or a restarted server: the old trend is void.
      state.samples = [];
      state.startTime = start;
    }
    if (doc.enabled !== true) return;
    const last = state.samples.length ? state.samples[state.samples.length - 1].timestamp : null;
    const url = last === null ? "metrics/history" : "metrics/history?since=" + encodeURIComponent(last);
    let history;
    try {
      history = await getJSON(url);
    } catch (err) {
      if (err instanceof AuthError) throw err;
      return; // the trend is a nicety; the numbers still refresh without it
    }
    if (!history || !Array.isArray(history.samples)) return;
    if (typeof history.interval_seconds === "number") state.historyInterval = history.interval_seconds;
    if (typeof history.capacity === "number") state.historyCapacity = history.capacity;
    for (const sample of history.samples) {
      // A zero-length interval (the first sample after a reset, say) has no rate: skip it.
      const usable = sample && typeof sample.timestamp === "number" && sample.interval_seconds > 0;
      if (usable && (last === null || sample.timestamp > last)) state.samples.push(sample);
    }
    if (state.samples.length > state.historyCapacity) {
      state.samples.splice(0, state.samples.length - state.historyCapacity);
    }
  }

  function schedule() {
    window.clearTimeout(state.timer);
    state.timer = window.setTimeout(refresh, state.refreshSeconds * 1000);
  }

  function setStatus(kind, text) {
    const status = $("status");
    status.className = "status " + kind;
    status.textContent = text;
  }

  // --- formatting -------------------------------------------------------------------------------

  function num(value) {
    return typeof value === "number" && Number.isFinite(value) ? value : 0;
  }

  function fmtInt(value) {
    return integer.format(num(value));
  }

  function fmtMs(value) {
    return num(value).toFixed(2);
  }

  // US dollars; a cost genai-prices does not know is null: shown as a dash, never as $0.
  function fmtCost(value) {
    if (value === null || value === undefined || !Number.isFinite(Number(value))) return "–";
    const usd = Number(value);
    return "$" + (usd !== 0 && Math.abs(usd) < 0.01 ? usd.toFixed(6) : usd.toFixed(2));
  }

  function fmtPercent(value) {
    return num(value).toFixed(2) + "%";
  }

  function fmtRate(value) {
    const v = num(value);
    if (v === 0) return "0";
    if (v >= 100) return v.toFixed(0);
    if (v >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }

  function fmtUptime(seconds) {
    let s = Math.max(0, Math.floor(num(seconds)));
    const days = Math.floor(s / 86400);
    s -= days * 86400;
    const hours = Math.floor(s / 3600);
    s -= hours * 3600;
    const minutes = Math.floor(s / 60);
    s -= minutes * 60;
    if (days) return days + "d " + hours + "h";
    if (hours) return hours + "h " + String(minutes).padStart(2, "0") + "m";
    if (minutes) return minutes + "m " + String(s).padStart(2, "0") + "s";
    return s + "s";
  }

  function fmtClock(timestamp) {
    return new Date(timestamp * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  }

  // --- DOM helpers (text only) ------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    return node;
  }

  function svgText(x, y, text, anchor) {
    const node = svg("text", { x, y, "text-anchor": anchor || "start" });
    node.textContent = text;
    return node;
  }

  function errorsCell(errorTypes) {
    const td = el("td", "text errors");
    const entries = Object.entries(errorTypes || {}).sort((a, b) => num(b[1]) - num(a[1]));
    if (!entries.length) {
      td.appendChild(el("span", "none", "–"));
      return td;
    }
    for (const [type, count] of entries) {
      const item = el("span", "err");
      item.appendChild(el("span", "err-type", type));
      item.appendChild(el("span", "err-count", "× " + fmtInt(count)));
      td.appendChild(item);
    }
    return td;
  }

  // --- charts -----------------------------------------------------------------------------------

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (value <= step * power) return step * power;
    }
    return 10 * power;
  }

  // Points [x, y|null] -> SVG path data, breaking the line where y is null.
  function pathData(points) {
    let d = "";
    let pen = false;
    for (const [x, y] of points) {
      if (y === null) {
        pen = false;
        continue;
      }
      d += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
      pen = true;
    }
    return d;
  }

  function timeSpan() {
    const samples = state.samples;
    if (samples.length < 2) return null;
    const t0 = samples[0].timestamp;
    const t1 = samples[samples.length - 1].timestamp;
    return t1 > t0 ? [t0, t1] : null;
  }

  function drawOverview() {
    const box = $("overview-chart");
    box.replaceChildren();
    const span = timeSpan();
    const note = $("history-note");
    const minutes = Math.round((state.historyCapacity * state.historyInterval) / 60);
    note.textContent =
      "one point every " + state.historyInterval + " s, last " + minutes + " min kept · " +
      state.samples.length + " point" + (state.samples.length === 1 ? "" : "s");
    if (!span) {
      box.appendChild(el("div", "empty", "Collecting trend data: the first points appear after two samples."));
      return;
    }
    const width = Math.max(box.clientWidth, 320);
    const height = 150;
    const left = 44;
    const right = 12;
    const top = 10;
    const bottom = 22;
    const plotW = width - left - right;
    const plotH = height - top - bottom;
    const rates = state.samples.map((s) => num(s.request_rate));
    const failures = state.samples.map((s) => {
      let failed = 0;
      for (const tool of Object.values(s.tools || {})) failed += num(tool.failed);
      return s.interval_seconds > 0 ? failed / s.interval_seconds : 0;
    });
    const yMax = niceMax(Math.max(...rates, ...failures));
    const x = (t) => left + ((t - span[0]) / (span[1] - span[0])) * plotW;
    const y = (v) => top + plotH - (v / yMax) * plotH;
    const chart = svg("svg", { width, height, viewBox: "0 0 " + width + " " + height, role: "img" });
    const title = svg("title");
    title.textContent = "requests per second over the last " + state.samples.length + " samples";
    chart.appendChild(title);
    for (const fraction of [0, 0.5, 1]) {
      const gy = top + plotH - fraction * plotH;
      chart.appendChild(svg("line", { class: "grid", x1: left, x2: width - right, y1: gy, y2: gy }));
      const tick = yMax * fraction;
      chart.appendChild(svgText(left - 6, gy + 4, Number.isInteger(tick) ? String(tick) : fmtRate(tick), "end"));
    }
    const ratePoints = state.samples.map((s, i) => [x(s.timestamp), y(rates[i])]);
    const area =
      pathData(ratePoints) +
      "L" + ratePoints[ratePoints.length - 1][0].toFixed(1) + " " + (top + plotH) +
      "L" + ratePoints[0][0].toFixed(1) + " " + (top + plotH) + "Z";
    chart.appendChild(svg("path", { class: "rate-area", d: area }));
    chart.appendChild(svg("path", { class: "rate-line", d: pathData(ratePoints) }));
    const failPoints = state.samples.map((s, i) => [x(s.timestamp), y(failures[i])]);
    chart.appendChild(svg("path", { class: "fail-line", d: pathData(failPoints) }));
    const labels = [[span[0], "start"], [(span[0] + span[1]) / 2, "middle"], [span[1], "end"]];
    for (const [t, anchor] of labels) chart.appendChild(svgText(x(t), height - 6, fmtClock(t), anchor));
    box.appendChild(chart);
  }

  // One tool's trend: request rate (area) or p95 (line, with the threshold dashed).
  function sparkline(values, kind, span) {
    const width = 124;
    const height = 30;
    const plotW = 80;
    const chart = svg("svg", { class: "spark", width, height, viewBox: "0 0 " + width + " " + height });
    const present = values.filter((v) => v !== null);
    if (!span || present.length === 0) {
      chart.appendChild(svgText(0, 19, "–"));
      return chart;
    }
    const threshold = kind === "p95" && state.threshold > 0 ? state.threshold : null;
    let yMax = Math.max(...present);
    // Show the threshold line when it is near the data, so "how far over" reads at a glance.
    if (threshold !== null && threshold <= yMax * 1.5) yMax = Math.max(yMax, threshold);
    if (!(yMax > 0)) yMax = 1;
    const x = (t) => ((t - span[0]) / (span[1] - span[0])) * plotW;
    const y = (v) => 3 + (height - 6) * (1 - v / yMax);
    const points = state.samples.map((s, i) => [x(s.timestamp), values[i] === null ? null : y(values[i])]);
    if (kind === "rate") {
      const first = points[0][0].toFixed(1);
      const lastX = points[points.length - 1][0].toFixed(1);
      const d = pathData(points) + "L" + lastX + " " + (height - 3) + "L" + first + " " + (height - 3) + "Z";
      chart.appendChild(svg("path", { class: "rate-area", d }));
      chart.appendChild(svg("path", { class: "rate-line", d: pathData(points) }));
    } else {
      if (threshold !== null && threshold <= yMax) {
        const ty = y(threshold);
        chart.appendChild(svg("line", { class: "threshold", x1: 0, x2: plotW, y1: ty, y2: ty }));
      }
      chart.appendChild(svg("path", { class: "p95-line", d: pathData(points) }));
    }
    let latest = null;
    for (let i = values.length - 1; i >= 0; i -= 1) {
      if (values[i] !== null) {
        latest = values[i];
        break;
      }
    }
    const label = kind === "rate" ? fmtRate(latest) + "/s" : fmtMs(latest);
    chart.appendChild(svgText(plotW + 6, 19, label));
    const title = svg("title");
    title.textContent =
      (kind === "rate" ? "requests/s" : "p95 ms") + ": latest " + label + ", max " +
      (kind === "rate" ? fmtRate(Math.max(...present)) : fmtMs(Math.max(...present)));
    chart.appendChild(title);
    return chart;
  }

  function toolTrends(name) {
    const rate = [];
    const p95 = [];
    for (const sample of state.samples) {
      const entry = sample.tools ? sample.tools[name] : undefined;
      rate.push(entry ? num(entry.rate_per_second) : 0);
      p95.push(entry && typeof entry.p95_latency_ms === "number" ? entry.p95_latency_ms : null);
    }
    return { rate, p95 };
  }

  // --- tables -----------------------------------------------------------------------------------

  function compareRows(a, b) {
    const { key, dir } = state.sort;
    const va = a[key];
    const vb = b[key];
    let result;
    if (typeof va === "string" || typeof vb === "string") result = String(va).localeCompare(String(vb));
    else result = num(va) - num(vb);
    if (result === 0) result = String(a.tool_name).localeCompare(String(b.tool_name));
    return dir * result;
  }

  function renderTools(doc) {
    const tbody = $("tools").tBodies[0];
    const span = timeSpan();
    const rows = Object.entries(doc.tool_metrics || {}).map(([name, tool]) => {
      const trends = toolTrends(name);
      const recent = trends.rate.length ? trends.rate[trends.rate.length - 1] : 0;
      return Object.assign({}, tool, { tool_name: name, trends, recent_rate: recent });
    });
    rows.sort(compareRows);
    const fragment = document.createDocumentFragment();
    let failing = 0;
    let slow = 0;
    for (const tool of rows) {
      const tr = el("tr");
      tr.dataset.tool = tool.tool_name;
      const isFailing = num(tool.failed_calls) > 0;
      const isSlow = state.threshold > 0 && num(tool.p95_latency_ms) > state.threshold;
      if (isFailing) {
        tr.classList.add("failing");
        failing += 1;
      }
      if (isSlow) {
        tr.classList.add("slow");
        slow += 1;
      }
      const nameCell = el("td", "name");
      nameCell.appendChild(el("span", "tool-name", tool.tool_name));
      if (isFailing) nameCell.appendChild(el("span", "badge failing", "failing"));
      if (isSlow) nameCell.appendChild(el("span", "badge slow", "slow"));
      tr.appendChild(nameCell);
      tr.appendChild(el("td", "calls", fmtInt(tool.total_calls)));
      tr.appendChild(el("td", isFailing ? "failed bad" : "failed", fmtInt(tool.failed_calls)));
      tr.appendChild(el("td", isFailing ? "success bad" : "success", fmtPercent(tool.success_rate)));
      tr.appendChild(el("td", "p50", fmtMs(tool.p50_latency_ms)));
      tr.appendChild(el("td", isSlow ? "p95 over" : "p95", fmtMs(tool.p95_latency_ms)));
      tr.appendChild(el("td", "p99", fmtMs(tool.p99_latency_ms)));
      tr.appendChild(el("td", "max", fmtMs(tool.max_latency_ms)));
      tr.appendChild(errorsCell(tool.error_types));
      const rateCell = el("td", "spark rate-trend");
      rateCell.appendChild(sparkline(tool.trends.rate, "rate", span));
      tr.appendChild(rateCell);
      const p95Cell = el("td", "spark p95-trend");
      p95Cell.appendChild(sparkline(tool.trends.p95, "p95", span));
      tr.appendChild(p95Cell);
      fragment.appendChild(tr);
    }
    if (!rows.length) {
      const tr = el("tr", "empty-row");
      const td = el("td", "", "No tool calls recorded yet.");
      td.colSpan = 11;
      tr.appendChild(td);
      fragment.appendChild(tr);
    }
    tbody.replaceChildren(fragment);
    $("tool-count").textContent = fmtInt(rows.length);
    const alerts = $("tool-alerts");
    alerts.replaceChildren();
    if (failing) alerts.appendChild(el("span", "bad", failing + " failing"));
    if (failing && slow) alerts.appendChild(document.createTextNode(" · "));
    if (slow) alerts.appendChild(el("span", "warn", slow + " over " + state.threshold + " ms p95"));
    if (!failing && !slow && rows.length) alerts.textContent = "all healthy";
    for (const th of $("tools").tHead.rows[0].cells) {
      if (!th.dataset.key) continue;
      if (th.dataset.key === state.sort.key) th.setAttribute("aria-sort", state.sort.dir < 0 ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    }
  }

  function renderCaches(doc) {
    const tbody = $("caches").tBodies[0];
    const fragment = document.createDocumentFragment();
    const caches = Object.entries(doc.cache_metrics || {});
    for (const [name, cache] of caches) {
      const tr = el("tr");
      tr.dataset.cache = name;
      tr.appendChild(el("td", "name", name));
      tr.appendChild(el("td", "hit-rate", fmtPercent(cache.hit_rate)));
      tr.appendChild(el("td", "hits", fmtInt(cache.hits)));
      tr.appendChild(el("td", "misses", fmtInt(cache.misses)));
      tr.appendChild(el("td", "evictions", fmtInt(cache.evictions)));
      tr.appendChild(el("td", "size-rejections", fmtInt(cache.size_rejections)));
      fragment.appendChild(tr);
    }
    if (!caches.length) {
      const tr = el("tr", "empty-row");
      const td = el("td", "", "No cache activity recorded yet.");
      td.colSpan = 6;
      tr.appendChild(td);
      fragment.appendChild(tr);
    }
    tbody.replaceChildren(fragment);
  }

  function renderProviders(doc) {
    const tbody = $("providers").tBodies[0];
    const fragment = document.createDocumentFragment();
    const providers = Object.entries(doc.provider_metrics || {});
    for (const [name, provider] of providers) {
      const tr = el("tr");
      tr.dataset.provider = name;
      const isFailing = num(provider.failed_calls) > 0;
      tr.appendChild(el("td", "name", name));
      tr.appendChild(el("td", "calls", fmtInt(provider.total_calls)));
      tr.appendChild(el("td", isFailing ? "success bad" : "success", fmtPercent(provider.success_rate)));
      tr.appendChild(el("td", "p50", fmtMs(provider.p50_latency_ms)));
      tr.appendChild(el("td", "p95", fmtMs(provider.p95_latency_ms)));
      tr.appendChild(el("td", "p99", fmtMs(provider.p99_latency_ms)));
      tr.appendChild(el("td", "tokens", fmtInt(provider.input_tokens) + " / " + fmtInt(provider.output_tokens)));
      tr.appendChild(el("td", "cost", fmtCost(provider.cost_usd)));
      tr.appendChild(errorsCell(provider.error_types));
      const models = el("td", "text models");
      for (const [model, m] of Object.entries(provider.models || {})) {
        const item = el("span", "model");
        item.appendChild(el("span", "model-name", model));
        item.appendChild(el("span", "model-stats", fmtInt(m.total_calls) + " calls · p95 " + fmtMs(m.p95_latency_ms) + " ms · " + fmtCost(m.cost_usd)));
        models.appendChild(item);
      }
      if (!models.childNodes.length) models.textContent = "–";
      tr.appendChild(models);
      fragment.appendChild(tr);
    }
    if (!providers.length) {
      const tr = el("tr", "empty-row");
      const td = el("td", "", "No LLM provider calls recorded yet.");
      td.colSpan = 10;
      tr.appendChild(td);
      fragment.appendChild(tr);
    }
    tbody.replaceChildren(fragment);
  }

  function render() {
    const doc = state.doc;
    if (!doc) return;
    const disabled = doc.enabled !== true;
    $("disabled").hidden = !disabled;
    $("content").hidden = disabled;
    document.body.dataset.enabled = String(!disabled);
    if (disabled) return;
    const system = doc.system_metrics || {};
    $("uptime").textContent = fmtUptime(system.uptime_seconds);
    $("uptime").title = num(system.uptime_seconds).toFixed(2) + " s";
    $("sessions").textContent = fmtInt(system.active_sessions);
    $("concurrent").textContent = fmtInt(system.concurrent_requests);
    $("total-requests").textContent = fmtInt(system.total_requests);
    drawOverview();
    renderTools(doc);
    renderCaches(doc);
    renderProviders(doc);
  }

  // --- controls ---------------------------------------------------------------------------------

  function wireControls() {
    const threshold = $("threshold");
    if (Number.isFinite(state.threshold) && state.threshold >= 0) threshold.value = String(state.threshold);
    else state.threshold = 500;
    threshold.addEventListener("input", () => {
      const value = Number(threshold.value);
      if (!Number.isFinite(value) || value < 0) return;
      state.threshold = value;
      storageSet(window.localStorage, THRESHOLD_KEY, String(value));
      render();
    });

    const refreshSelect = $("refresh");
    if (![...refreshSelect.options].some((o) => Number(o.value) === state.refreshSeconds)) {
      const option = el("option", "", state.refreshSeconds + " s");
      option.value = String(state.refreshSeconds);
      refreshSelect.appendChild(option);
    }
    refreshSelect.value = String(state.refreshSeconds);
    refreshSelect.addEventListener("change", () => {
      const value = Number(refreshSelect.value);
      if (!(value > 0)) return;
      state.refreshSeconds = value;
      storageSet(window.localStorage, REFRESH_KEY, String(value));
      schedule();
    });

    for (const th of $("tools").tHead.rows[0].cells) {
      if (!th.dataset.key) continue;
      th.tabIndex = 0;
      const sortBy = () => {
        const key = th.dataset.key;
        if (state.sort.key === key) state.sort.dir = -state.sort.dir;
        else state.sort = { key, dir: th.dataset.type === "text" ? 1 : -1 };
        storageSet(window.localStorage, SORT_KEY, JSON.stringify(state.sort));
        render();
      };
      th.addEventListener("click", sortBy);
      th.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortBy();
        }
      });
    }

    $("token-toggle").addEventListener("click", () => {
      const form = $("token-form");
      form.hidden = !form.hidden;
      if (!form.hidden) $("token").focus();
    });
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      state.token = $("token").value.trim();
      storageSet(window.sessionStorage, TOKEN_KEY, state.token || null);
      $("token").value = "";
      refresh();
    });
    $("token-forget").addEventListener("click", () => {
      state.token = "";
      storageSet(window.sessionStorage, TOKEN_KEY, null);
      refresh();
    });

    let resizeTimer = null;
    window.addEventListener("resize", () => {
      window.clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(render, 150);
    });
  }

  wireControls();
  refresh();
})();
