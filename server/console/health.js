// Data health: for every domain, how complete its data is (expected against received
// samples by indicator and department), which sources are silent and since when, the gaps,
// how late samples arrive, and what the data-quality rules rejected and flagged — the
// completeness report (/api/v1/completeness) and the quality report (/api/v1/quality).

import { get, num, queryRange, seriesName, status } from "./api.js";
import { LineChart, colour } from "./chart.js";
import { bar, el, every, table } from "./dom.js";
import { domainName, fmtDuration, fmtNum, t, timeOf } from "./i18n.js";

const WINDOWS = [["1h", 3600], ["6h", 21600], ["24h", 86400], ["7d", 604800]];

export function start(main, params) {
  const windowSelect = el("select", { id: "window", "aria-label": t("health.window") },
    WINDOWS.map(([w]) => el("option", { value: w }, t("range." + w))));
  windowSelect.value = params.get("window") || "1h";
  const error = el("div", { class: "error", role: "alert" });
  const body = el("div", { id: "health" });
  const chartBox = el("div", { id: "ratio-chart" });
  const chart = new LineChart(chartBox, 200);
  const ratioNote = el("p", { class: "dim", hidden: true }, t("health.ratioLater"));
  main.append(el("h1", {}, t("nav.health")),
    el("div", { class: "row" }, el("label", {}, t("health.window"), " ", windowSelect)), error,
    el("h2", {}, t("health.ratioOverTime")), ratioNote, chartBox, body);

  const load = async () => {
    const seconds = WINDOWS.find(([w]) => w === windowSelect.value)[1];
    const end = Math.floor(Date.now() / 1000);
    const namespaces = (await status()).namespaces.map((n) => n.name).filter((n) => n !== "iocdb").sort();
    const reports = await Promise.all(namespaces.map(async (ns) => {
      const [c, q] = await Promise.all([
        get(ns, "/api/v1/completeness", { start: end - seconds, end }).catch((e) => ({ error: e.message })),
        get(ns, "/api/v1/quality", { limit: 20 }).catch((e) => ({ error: e.message })),
      ]);
      return { ns, c, q };
    }));
    const completeness = [];
    const silent = [];
    let silentTotal = 0;
    const gaps = [];
    const delays = [];
    const counts = [];
    const events = [];
    const problems = [];
    for (const { ns, c, q } of reports) {
      if (c.error) problems.push(`${ns}: ${c.error}`);
      else {
        const department = Object.fromEntries(c.groups.map((g) => [g.metric, g.department]));
        for (const g of c.groups) {
          // Counted by the server (it lists the first 10,000 silent series only).
          const silentHere = c.silent_by_metric[g.metric] || 0;
          completeness.push([g.department || "–", domainName(ns), g.metric, [fmtNum(g.series), "num"],
            [fmtNum(g.expected), "num"], [fmtNum(g.received), "num"],
            [el("div", { class: "row" }, bar(g.ratio, g.ratio < 0.8 ? "bad" : g.ratio < 0.95 ? "warn" : ""), fmtNum((g.ratio ?? NaN) * 100) + " %"), ""],
            [fmtNum(g.gaps), "num"], [fmtNum(silentHere), "num"]]);
        }
        silentTotal += Object.values(c.silent_by_metric).reduce((n, k) => n + k, 0);
        for (const s of c.silent) {
          silent.push({ ns, s, department: department[s.labels.__name__] || "" });
        }
        for (const g of c.gaps) gaps.push({ ns, g });
        for (const d of c.delays) delays.push({ ns, d });
      }
      if (q.error) problems.push(`${ns}: ${q.error}`);
      else {
        for (const x of q.counts) counts.push({ ns, x });
        for (const x of q.events) events.push({ ns, x });
      }
    }
    error.textContent = problems.join("\n");
    silent.sort((a, b) => b.s.silent_for - a.s.silent_for);
    gaps.sort((a, b) => b.g.missing - a.g.missing);
    events.sort((a, b) => b.x.arrival - a.x.arrival);
    const slowest = Math.max(1, ...delays.map(({ d }) => d.p99));
    body.replaceChildren(
      el("h2", {}, t("health.completeness")),
      completeness.length ? table([t("health.department"), t("health.domain"), t("health.metric"),
        [t("health.series"), "num"], [t("health.expected"), "num"], [t("health.received"), "num"],
        t("health.ratio"), [t("health.gaps"), "num"], [t("health.silent"), "num"]], completeness)
        : el("p", { class: "dim" }, t("health.noIntervals")),
      el("h2", {}, t("health.silentSources", { n: silentTotal })),
      table([t("health.department"), t("health.domain"), t("health.series"), t("health.lastSample"), t("health.silentFor")],
        silent.slice(0, 100).map(({ ns, s, department }) => [department || "–", domainName(ns),
          [seriesName(s.labels), "labels"], s.last ? timeOf(s.last * 1000, false, true) : t("health.never"),
          fmtDuration(s.silent_for * 1000)])),
      el("h2", {}, t("health.gapsTitle", { n: gaps.length })),
      table([t("health.domain"), t("health.series"), t("health.from"), t("health.to"), [t("health.missing"), "num"]],
        gaps.slice(0, 50).map(({ ns, g }) => [domainName(ns), [seriesName(g.labels), "labels"],
          timeOf(g.start * 1000, false, true), g.open ? t("health.open") : timeOf(g.end * 1000, false, true),
          [fmtNum(g.missing), "num"]])),
      el("h2", {}, t("health.delays")),
      table([t("health.domain"), t("health.metric"), [t("health.samples"), "num"], ["p50", "num"], ["p99", "num"],
        ["max", "num"], ""],
        delays.map(({ ns, d }) => [domainName(ns), d.metric, [fmtNum(d.samples), "num"],
          [fmtDuration(d.p50 * 1000), "num"], [fmtDuration(d.p99 * 1000), "num"],
          [fmtDuration(d.max * 1000), "num"], [bar(d.p99 / slowest, d.p99 > 60 ? "warn" : ""), ""]])),
      el("h2", {}, t("health.quality")),
      counts.length ? table([t("health.domain"), t("health.metric"), t("health.rule"), t("health.action"), [t("health.samples"), "num"]],
        counts.map(({ ns, x }) => [domainName(ns), x.metric, t("rule." + x.rule), t("action." + x.action), [fmtNum(x.samples), "num"]]))
        : el("p", { class: "dim" }, t("health.noQuality")),
      el("h2", {}, t("health.events")),
      table([t("health.arrival"), t("health.domain"), t("health.series"), t("health.rule"), t("health.action"), [t("health.value"), "num"], t("health.detail")],
        events.slice(0, 50).map(({ ns, x }) => [timeOf(x.arrival * 1000, true, true), domainName(ns), [x.series, "labels"],
          t("rule." + x.rule), t("action." + x.action), [fmtNum(x.value), "num"], x.detail])));
    // The exported completeness ratio (namespace iocdb, written every minute), by domain.
    const ratio = await queryRange("iocdb", "avg by (namespace) (iocdb_completeness_ratio)", end - seconds, end,
      Math.max(60, Math.ceil(seconds / 300 / 60) * 60)).catch(() => ({ result: [] }));
    ratioNote.hidden = ratio.result.length > 0;
    chart.draw(ratio.result.map((r, i) => ({ name: domainName(r.metric.namespace || ""), colour: colour(i), step: 60000,
      points: r.values.map(([ts, v]) => [ts * 1000, num(v)]) })), (end - seconds) * 1000, end * 1000);
    main.dataset.ready = "1";
  };
  windowSelect.addEventListener("change", () => { loop.stop(); loop = every(15000, load, show); });
  const show = (e) => { error.textContent = e.message; main.dataset.ready = "1"; };
  let loop = every(15000, load, show);
  return { stop: () => { loop.stop(); chart.destroy(); } };
}
