// Explore: a PromQL box with completion of metric names, label names and values; a time
// range (relative, last 15 minutes to a year, or absolute); a line chart with a legend that
// filters, or a table of the values at the end of the range; what the query read and took;
// and every choice in the URL, so that a link shows the same chart.

import { get, num, query, queryRange, seriesName, status } from "./api.js";
import { LineChart, colour } from "./chart.js";
import { el, setParams } from "./dom.js";
import { fmtNum, t, timeOf } from "./i18n.js";

const RANGES = [["15m", 900], ["1h", 3600], ["3h", 10800], ["6h", 21600], ["12h", 43200],
  ["24h", 86400], ["2d", 172800], ["7d", 604800], ["30d", 2592000], ["90d", 7776000],
  ["1y", 31536000]];
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
/** About this many points per series: enough for a wide screen, cheap to draw. */
const POINTS = 300;

const FUNCTIONS = ["abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil",
  "changes", "clamp", "clamp_max", "clamp_min", "count", "count_over_time", "count_values",
  "day_of_month", "day_of_week", "days_in_month", "delta", "deriv", "exp", "floor", "group",
  "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
  "label_replace", "last_over_time", "ln", "log10", "log2", "max", "max_over_time", "min",
  "min_over_time", "minute", "month", "predict_linear", "present_over_time", "quantile",
  "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt",
  "stddev", "stddev_over_time", "stdvar", "stdvar_over_time", "sum", "sum_over_time", "time",
  "timestamp", "topk", "vector", "year"];
const KEYWORDS = ["by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
  "and", "or", "unless"];

/** The step, in seconds, for a range: a round one giving about POINTS points. */
export function autoStep(seconds) {
  return STEPS.find((s) => seconds / s <= POINTS) || STEPS[STEPS.length - 1];
}

/** `2026-11-30T10:15` (a datetime-local value, local time) ↔ epoch ms. */
const toLocalInput = (ms) => {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
};

export function start(main, params) {
  const state = {
    ns: params.get("ns") || "",
    q: params.get("q") || "",
    range: params.get("range") || "1h",
    from: params.get("from") ? Number(params.get("from")) : null,
    to: params.get("to") ? Number(params.get("to")) : null,
    step: params.get("step") || "",
    view: params.get("view") === "table" ? "table" : "chart",
    refresh: params.get("refresh") || "0",
  };
  let controller = null;
  let refreshTimer = null;
  let series = [];
  const cache = new Map();

  const nsSelect = el("select", { id: "ns", "aria-label": t("explore.namespace") },
    el("option", { value: state.ns }, state.ns || t("ns.default")));
  const box = el("textarea", { id: "promql", rows: 1, spellcheck: false, autocomplete: "off",
    placeholder: t("explore.placeholder") });
  box.value = state.q;
  const list = el("ul", { class: "complete", hidden: true, role: "listbox" });
  const rangeSelect = el("select", { id: "range", "aria-label": t("explore.range") },
    RANGES.map(([r]) => el("option", { value: r }, t("range." + r))),
    el("option", { value: "abs" }, t("range.abs")));
  rangeSelect.value = state.from !== null ? "abs" : state.range;
  const fromInput = el("input", { type: "datetime-local", id: "from", "aria-label": t("explore.from") });
  const toInput = el("input", { type: "datetime-local", id: "to", "aria-label": t("explore.to") });
  const stepInput = el("input", { id: "step", size: 6, placeholder: t("explore.auto"),
    "aria-label": t("explore.step"), value: state.step });
  const refreshSelect = el("select", { id: "refresh", "aria-label": t("explore.refresh") },
    [["0", t("explore.refresh.off")], ["5", "5 s"], ["15", "15 s"], ["60", "1 min"]]
      .map(([v, text]) => el("option", { value: v }, text)));
  refreshSelect.value = state.refresh;
  const run = el("button", { id: "run", class: "primary", type: "button" }, t("explore.run"));
  const chartButton = el("button", { type: "button", "aria-pressed": String(state.view === "chart") }, t("explore.chart"));
  const tableButton = el("button", { type: "button", "aria-pressed": String(state.view === "table") }, t("explore.table"));
  const error = el("div", { class: "error", id: "error", role: "alert" });
  const stats = el("div", { class: "stats", id: "stats" });
  const chartBox = el("div", { id: "chart" });
  const filter = el("input", { id: "legend-filter", placeholder: t("explore.filter"), size: 30 });
  const legend = el("div", { class: "legend", id: "legend" });
  const tableBox = el("div", { id: "table" });
  const chart = new LineChart(chartBox, 360);

  main.append(
    el("h1", {}, t("nav.explore")),
    el("div", { class: "row" }, el("label", {}, t("explore.namespace"), " ", nsSelect),
      el("label", {}, t("explore.range"), " ", rangeSelect), fromInput, toInput,
      el("label", {}, t("explore.step"), " ", stepInput),
      el("label", {}, t("explore.refresh"), " ", refreshSelect)),
    el("div", { class: "row" }, el("div", { class: "editor" }, box, list), run, chartButton, tableButton),
    error, stats, chartBox,
    el("div", { class: "row" }, filter), legend, tableBox);

  const showRange = () => {
    const abs = rangeSelect.value === "abs";
    fromInput.hidden = toInput.hidden = !abs;
    if (abs && !fromInput.value) {
      const end = state.to ?? Date.now();
      toInput.value = toLocalInput(end);
      fromInput.value = toLocalInput(state.from ?? end - 3600000);
    }
  };
  if (state.from !== null) fromInput.value = toLocalInput(state.from);
  if (state.to !== null) toInput.value = toLocalInput(state.to);
  showRange();

  status().then((s) => {
    const names = s.namespaces.map((n) => n.name).filter((n) => n !== state.ns);
    nsSelect.append(...names.map((n) => el("option", { value: n }, n || t("ns.default"))));
  }).catch(() => {});

  /** [start, end] ms and the step in seconds, from the controls. */
  const window_ = () => {
    let start;
    let end;
    if (rangeSelect.value === "abs") {
      start = new Date(fromInput.value).getTime();
      end = new Date(toInput.value).getTime();
    } else {
      end = Date.now();
      start = end - RANGES.find(([r]) => r === rangeSelect.value)[1] * 1000;
    }
    const step = Number(stepInput.value) > 0 ? Number(stepInput.value) : autoStep((end - start) / 1000);
    if (rangeSelect.value !== "abs") {
      // A moving window aligned to its step, as Grafana aligns it: a refresh asks the same
      // steps again, and the server's result cache answers all but the newest.
      const ms = step * 1000;
      end = Math.floor(end / ms) * ms;
      start = Math.floor(start / ms) * ms;
    }
    return { start, end, step };
  };

  const save = () => {
    const p = new URLSearchParams();
    if (nsSelect.value) p.set("ns", nsSelect.value);
    p.set("q", box.value);
    if (rangeSelect.value === "abs") {
      p.set("from", String(new Date(fromInput.value).getTime()));
      p.set("to", String(new Date(toInput.value).getTime()));
    } else p.set("range", rangeSelect.value);
    if (stepInput.value) p.set("step", stepInput.value);
    if (state.view === "table") p.set("view", "table");
    if (refreshSelect.value !== "0") p.set("refresh", refreshSelect.value);
    setParams(p);
  };

  const drawLegend = () => {
    const f = filter.value.toLowerCase();
    const shown = series.filter((s) => !f || s.name.toLowerCase().includes(f));
    for (const s of series) s.hidden = f !== "" && !s.name.toLowerCase().includes(f);
    legend.replaceChildren(...shown.slice(0, 300).map((s) => {
      const check = el("input", { type: "checkbox", checked: !s.off });
      check.addEventListener("change", () => { s.off = !check.checked; redraw(); });
      const sw = el("span", { class: "swatch" });
      sw.style.background = s.colour;
      return el("label", {}, check, sw, s.name);
    }));
    if (shown.length > 300) legend.append(el("div", { class: "dim" }, t("explore.more", { n: shown.length - 300 })));
  };
  const redraw = () => {
    const visible = series.map((s) => ({ ...s, hidden: s.hidden || s.off }));
    return chart.draw(visible, state.start, state.end);
  };
  filter.addEventListener("input", () => { drawLegend(); redraw(); });

  const execute = async () => {
    const expr = box.value.trim();
    closeList();
    save();
    if (!expr) return;
    if (controller) controller.abort();
    controller = new AbortController();
    const { start, end, step } = window_();
    if (!(end > start)) { error.textContent = t("explore.badRange"); return; }
    state.start = start;
    state.end = end;
    error.textContent = "";
    const began = performance.now();
    try {
      const ns = nsSelect.value;
      const data = await queryRange(ns, expr, (start / 1000).toFixed(3), (end / 1000).toFixed(3), step, true, controller.signal);
      const fetched = performance.now();
      series = (data.resultType === "matrix" ? data.result : []).map((r, i) => ({
        name: seriesName(r.metric), colour: colour(i), step: step * 1000,
        points: r.values.map(([ts, v]) => [Math.round(ts * 1000), num(v)]),
      }));
      let drawMs = 0;
      if (state.view === "chart") {
        chartBox.hidden = legend.hidden = filter.hidden = false;
        tableBox.replaceChildren();
        drawLegend();
        drawMs = redraw();
      } else {
        chartBox.hidden = legend.hidden = filter.hidden = true;
        await drawTable(ns, expr, end);
      }
      const s = data.stats || {};
      const own = s.iocdb || {};
      stats.textContent = t("explore.stats", {
        series: fmtNum(series.length), read: fmtNum(own.seriesRead ?? NaN),
        samples: fmtNum(own.samplesRead ?? NaN),
        server: fmtNum(((s.timings || {}).evalTotalTime ?? NaN) * 1000),
        total: fmtNum(fetched - began), draw: fmtNum(drawMs), step,
        source: t("explore.source." + (own.servedBy || "raw"), { tier: own.rollupTier || "" }),
      });
      main.dataset.query = JSON.stringify({ ns, query: expr, start: (start / 1000).toFixed(3), end: (end / 1000).toFixed(3), step });
      main.dataset.drawMs = String(drawMs);
      main.dataset.totalMs = String(performance.now() - began);
    } catch (e) {
      if (e.name === "AbortError") return;
      error.textContent = e.message;
      series = [];
      chart.draw([], start, end);
      legend.replaceChildren();
    }
    main.dataset.ready = "1";
  };

  const drawTable = async (ns, expr, end) => {
    const data = await query(ns, expr, (end / 1000).toFixed(3));
    let rows;
    if (data.resultType === "vector") {
      rows = data.result.map((r) => [[seriesName(r.metric), "labels"], [fmtNum(num(r.value[1])), "num"]]);
    } else if (data.resultType === "scalar" || data.resultType === "string") {
      rows = [["", [String(data.result[1]), "num"]]];
    } else {
      rows = data.result.map((r) => [[seriesName(r.metric), "labels"], [r.values.map((v) => v[1]).join(", "), "num"]]);
    }
    tableBox.replaceChildren(el("table", { id: "result-table" },
      el("thead", {}, el("tr", {}, el("th", {}, t("explore.series")), el("th", { class: "num" }, t("explore.value") + " @ " + timeOf(end, true, true)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map(([text, cls]) => el("td", { class: cls }, text)))))));
  };

  // Completion: what fits where the cursor is.
  let items = [];
  let selected = 0;
  let replaceFrom = 0;
  const closeList = () => { list.hidden = true; items = []; };
  const cached = async (key, load) => {
    if (!cache.has(key)) cache.set(key, load().catch(() => []));
    return cache.get(key);
  };
  const suggest = async () => {
    const pos = box.selectionStart;
    const before = box.value.slice(0, pos);
    const ns = nsSelect.value;
    const open = before.lastIndexOf("{");
    let found = [];
    let prefix = "";
    if (open > before.lastIndexOf("}")) {
      const metric = (before.slice(0, open).match(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/) || [])[1];
      const match = metric ? { "match[]": metric } : {};
      const part = before.slice(open + 1).split(",").pop();
      const value = part.match(/^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*("?)([^"]*)$/);
      const name = part.match(/^\s*([a-zA-Z_][a-zA-Z0-9_]*)?$/);
      if (value) {
        prefix = value[3];
        replaceFrom = pos - prefix.length - value[2].length;
        const values = await cached(`v:${ns}:${value[1]}:${metric || ""}`,
          () => get(ns, `/api/v1/label/${encodeURIComponent(value[1])}/values`, match));
        found = values.map((v) => ({ text: v, insert: JSON.stringify(v), kind: value[1] }));
      } else if (name) {
        prefix = name[1] || "";
        replaceFrom = pos - prefix.length;
        const names = await cached(`n:${ns}:${metric || ""}`, () => get(ns, "/api/v1/labels", match));
        found = names.filter((n) => n !== "__name__").map((n) => ({ text: n, insert: n, kind: t("explore.label") }));
      }
    } else {
      const word = before.match(/([a-zA-Z_:][a-zA-Z0-9_:]*)$/);
      if (word) {
        prefix = word[1];
        replaceFrom = pos - prefix.length;
        const metrics = await cached(`m:${ns}`, () => get(ns, "/api/v1/label/__name__/values"));
        found = [
          ...metrics.map((m) => ({ text: m, insert: m, kind: t("explore.metric") })),
          ...FUNCTIONS.map((f) => ({ text: f, insert: f + "(", kind: t("explore.function") })),
          ...KEYWORDS.map((k) => ({ text: k, insert: k + " ", kind: "" })),
        ];
      }
    }
    if (box.selectionStart !== pos) return; // typed on meanwhile: a newer call answers
    const p = prefix.toLowerCase();
    items = found.filter((i) => i.text.toLowerCase().includes(p) && i.text !== prefix)
      .sort((a, b) => (b.text.toLowerCase().startsWith(p) - a.text.toLowerCase().startsWith(p)))
      .slice(0, 60);
    selected = 0;
    renderList();
  };
  const renderList = () => {
    list.hidden = items.length === 0;
    list.replaceChildren(...items.map((i, n) => el("li", { class: n === selected ? "sel" : "",
      role: "option", onmousedown: (e) => { e.preventDefault(); accept(n); } }, i.text, el("small", {}, i.kind))));
  };
  const accept = (n) => {
    const item = items[n];
    const pos = box.selectionStart;
    box.value = box.value.slice(0, replaceFrom) + item.insert + box.value.slice(pos);
    const at = replaceFrom + item.insert.length;
    box.setSelectionRange(at, at);
    closeList();
    box.focus();
  };
  box.addEventListener("input", () => { suggest(); });
  box.addEventListener("blur", () => setTimeout(closeList, 150));
  box.addEventListener("keydown", (e) => {
    if (!list.hidden && items.length) {
      if (e.key === "ArrowDown") { selected = (selected + 1) % items.length; renderList(); e.preventDefault(); return; }
      if (e.key === "ArrowUp") { selected = (selected + items.length - 1) % items.length; renderList(); e.preventDefault(); return; }
      if (e.key === "Tab" || (e.key === "Enter" && !e.shiftKey && !e.ctrlKey)) { accept(selected); e.preventDefault(); return; }
      if (e.key === "Escape") { closeList(); e.preventDefault(); return; }
    }
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); execute(); }
  });

  const schedule = () => {
    clearInterval(refreshTimer);
    const s = Number(refreshSelect.value);
    if (s > 0) refreshTimer = setInterval(() => rangeSelect.value !== "abs" && execute(), s * 1000);
  };
  run.addEventListener("click", execute);
  rangeSelect.addEventListener("change", () => { showRange(); execute(); });
  for (const i of [fromInput, toInput, stepInput, nsSelect]) i.addEventListener("change", () => { cache.clear(); execute(); });
  refreshSelect.addEventListener("change", () => { schedule(); save(); });
  chartButton.addEventListener("click", () => {
    state.view = "chart"; chartButton.setAttribute("aria-pressed", "true"); tableButton.setAttribute("aria-pressed", "false"); execute();
  });
  tableButton.addEventListener("click", () => {
    state.view = "table"; tableButton.setAttribute("aria-pressed", "true"); chartButton.setAttribute("aria-pressed", "false"); execute();
  });
  schedule();
  if (state.q) execute(); else main.dataset.ready = "1";
  box.focus();
  return {
    stop() {
      clearInterval(refreshTimer);
      if (controller) controller.abort();
      chart.destroy();
    },
  };
}
