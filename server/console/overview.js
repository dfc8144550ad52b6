// The province at a glance: one tile per domain (namespace) with its key indicator's value
// now, its trend over the last 24 hours and whether its sources are live, late or silent
// (from the completeness report); below, the chosen indicator by commune. A value is asked
// again as soon as a sample of its indicator is acknowledged (one server-sent-event stream,
// /api/v1/watch, follows every tile's indicator) and every ten seconds besides; statuses
// refresh every five seconds, trends every minute. The key indicator of a tile
// is the first one its catalog declares, or the operator's choice, kept in this browser.

import { get, num, query, queryRange, scalarOf, status } from "./api.js";
import { sparkline } from "./chart.js";
import { bar, el, every } from "./dom.js";
import { domainName, fmtDuration, fmtNum, t, timeOf } from "./i18n.js";

/** The namespace iocdb writes its own completeness figures into. */
const OWN = "iocdb";

/**
 * How a tile sums up an indicator: a counter's increase over the last hour (or three of its
 * intervals, if longer), a ratio's mean, any other kind's sum — of each series' newest sample
 * within three of its intervals (at least five minutes), so that a daily or monthly
 * indicator still shows its value between samples.
 */
export function expression(metric, kind, intervalMs) {
  const interval = Math.max(1, Math.round((intervalMs || 60000) / 1000));
  const lookback = Math.max(300, 3 * interval);
  if (kind === "counter") {
    const window = Math.max(3600, 3 * interval);
    return { expr: `sum(increase(${metric}[${window}s]))`, per: ` / ${fmtDuration(window * 1000)}` };
  }
  const agg = kind === "ratio" ? "avg" : "sum";
  return { expr: `${agg}(last_over_time(${metric}[${lookback}s]))`, per: "" };
}

/** live / late / silent / unknown, and since when, from a completeness report. */
export function judge(report) {
  const total = report.groups.reduce((n, g) => n + g.series, 0);
  if (total === 0) return { status: "unknown" };
  const expected = report.groups.reduce((n, g) => n + g.expected, 0);
  const received = report.groups.reduce((n, g) => n + g.received, 0);
  const ratio = expected > 0 ? received / expected : 1;
  const silent = Object.values(report.silent_by_metric).reduce((n, k) => n + k, 0);
  const last = Math.max(0, ...report.silent.map((s) => s.last || 0));
  if (silent >= total) return { status: "silent", since: last || null, ratio };
  if (silent > 0 || ratio < 0.95) return { status: "late", silent, total, ratio };
  return { status: "live", ratio };
}

export function start(main) {
  const tiles = new Map(); // namespace → tile
  let chosen = localStorage.getItem("iocdb.overview.chosen");
  const error = el("div", { class: "error", role: "alert" });
  const grid = el("div", { class: "tiles", id: "tiles" });
  const communeTitle = el("h2", {});
  const groupSelect = el("select", { id: "group-by", "aria-label": t("overview.groupBy") });
  const communes = el("div", { class: "communes", id: "communes" });
  main.append(el("h1", {}, t("overview.title")), error, grid,
    el("div", { class: "row" }, communeTitle, el("label", {}, t("overview.groupBy"), " ", groupSelect)),
    communes);

  const makeTile = (ns) => {
    const metricSelect = el("select", { "aria-label": t("overview.indicator"), onclick: (e) => e.stopPropagation() });
    const tile = {
      ns, metric: null, kind: "", catalog: {}, expr: null, per: "",
      node: el("div", { class: "tile", "data-ns": ns, tabindex: 0 }),
      name: el("span", { class: "name" }, domainName(ns)),
      badge: el("span", { class: "status unknown", "data-status": "unknown" }, t("status.unknown")),
      dept: el("div", { class: "dept" }),
      value: el("span", { class: "value" }, "…"),
      unit: el("span", { class: "unit" }),
      spark: el("canvas", { "aria-label": t("overview.trend") }),
      since: el("div", { class: "since" }),
      metricSelect,
    };
    tile.node.append(el("div", { class: "top" }, tile.name, tile.badge), tile.dept, metricSelect,
      el("div", {}, tile.value, " ", tile.unit), tile.spark, tile.since);
    tile.node.addEventListener("click", () => choose(ns));
    metricSelect.addEventListener("change", () => {
      localStorage.setItem(`iocdb.tile.${ns}`, metricSelect.value);
      setMetric(tile, metricSelect.value);
      follow();
      refreshValue(tile);
      refreshTrend(tile);
      if (chosen === ns) showCommunes(true);
    });
    return tile;
  };

  const setMetric = (tile, metric) => {
    tile.metric = metric;
    const entry = tile.catalog[metric] || {};
    const own = entry.iocdb || {};
    tile.kind = own.kind || entry.type || "";
    ({ expr: tile.expr, per: tile.per } = expression(metric, tile.kind, own.expected_interval_ms));
    tile.dept.textContent = own.department || "";
    tile.unit.textContent = (entry.unit || "") + tile.per;
    tile.node.title = entry.help || metric;
  };

  const loadTile = async (tile) => {
    const [metadata, names] = await Promise.all([
      get(tile.ns, "/api/v1/metadata").catch(() => ({})),
      get(tile.ns, "/api/v1/label/__name__/values"),
    ]);
    tile.catalog = Object.fromEntries(Object.entries(metadata).map(([m, list]) => [m, list[0]]));
    const declared = names.filter((n) => tile.catalog[n] && tile.catalog[n].iocdb);
    const saved = localStorage.getItem(`iocdb.tile.${tile.ns}`);
    const metric = names.includes(saved) ? saved : (declared[0] || names[0]);
    tile.metricSelect.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (metric) {
      tile.metricSelect.value = metric;
      setMetric(tile, metric);
    }
  };

  const refreshValue = async (tile) => {
    if (!tile.expr) return;
    const v = scalarOf(await query(tile.ns, tile.expr));
    const text = Number.isFinite(v) ? fmtNum(v) : "–";
    if (tile.value.textContent !== text) tile.value.textContent = text;
    tile.node.dataset.value = String(v);
  };

  // One stream for all tiles: a browser opens at most six connections to a server.
  let source = null;
  let watched = "";
  const follow = () => {
    const entries = [...tiles.values()].filter((tl) => tl.metric).map((tl) => `${tl.ns}:${tl.metric}`);
    if (entries.join("\n") === watched) return;
    watched = entries.join("\n");
    if (source) source.close();
    if (!entries.length) return;
    const q = new URLSearchParams();
    for (const e of entries) q.append("watch[]", e);
    source = new EventSource(`/api/v1/watch?${q}`);
    const changed = (e) => {
      const tile = tiles.get(JSON.parse(e.data).namespace);
      // A burst of samples costs one query: the refresh starts a moment after the first.
      if (tile && !tile.pending) {
        tile.pending = setTimeout(() => {
          tile.pending = null;
          refreshValue(tile).catch(show);
        }, 20);
      }
    };
    source.addEventListener("samples", changed);
    source.addEventListener("gap", changed);
  };

  const refreshTrend = async (tile) => {
    if (!tile.expr) return;
    // Aligned to the step, so that a refresh is answered from the result cache.
    const end = Math.floor(Date.now() / 600000) * 600;
    const data = await queryRange(tile.ns, tile.expr, end - 86400, end, 600);
    const points = data.result.length ? data.result[0].values.map(([ts, v]) => [ts * 1000, num(v)]) : [];
    sparkline(tile.spark, points);
  };

  const refreshStatus = async (tile) => {
    const intervals = Object.values(tile.catalog).map((e) => (e.iocdb || {}).expected_interval_ms || 0);
    const window = Math.min(7 * 86400, Math.max(3600, (3 * Math.max(0, ...intervals)) / 1000));
    const end = Date.now() / 1000;
    const report = await get(tile.ns, "/api/v1/completeness", { start: (end - window).toFixed(3), end: end.toFixed(3) });
    const j = judge(report);
    tile.badge.className = `status ${j.status}`;
    tile.badge.dataset.status = j.status;
    tile.badge.textContent = t("status." + j.status);
    tile.node.dataset.status = j.status;
    if (j.status === "silent" && j.since) {
      tile.since.textContent = t("overview.silentSince", { time: timeOf(j.since * 1000, false, true), for: fmtDuration(Date.now() - j.since * 1000) });
    } else if (j.status === "late") {
      tile.since.textContent = t("overview.late", { silent: j.silent, total: j.total, ratio: fmtNum(j.ratio * 100) });
    } else {
      tile.since.textContent = j.status === "live"
        ? t("overview.complete", { ratio: fmtNum(j.ratio * 100), window: fmtDuration(window * 1000) }) : "";
    }
  };

  const choose = (ns) => {
    chosen = ns;
    localStorage.setItem("iocdb.overview.chosen", ns);
    for (const tl of tiles.values()) tl.node.classList.toggle("chosen", tl.ns === ns);
    showCommunes(true);
  };

  /** The chosen indicator by one of its labels (commune when it has one). */
  const showCommunes = async (labelsChanged) => {
    const tile = tiles.get(chosen);
    if (!tile || !tile.metric) { communeTitle.textContent = t("overview.pick"); communes.replaceChildren(); return; }
    communeTitle.textContent = `${domainName(tile.ns)} · ${tile.metric}`;
    if (labelsChanged) {
      const names = (await get(tile.ns, "/api/v1/labels", { "match[]": tile.metric })).filter((n) => n !== "__name__");
      const keep = names.includes(groupSelect.value) ? groupSelect.value : (names.includes("commune") ? "commune" : names[0]);
      groupSelect.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
      if (keep) groupSelect.value = keep;
    }
    const by = groupSelect.value;
    if (!by) { communes.replaceChildren(); return; }
    const inner = tile.expr.replace(/^(sum|avg)\(/, `$1 by (${by}) (`);
    const data = await query(tile.ns, `sort_desc(${inner})`);
    const rows = data.result.map((r) => [r.metric[by] ?? "", num(r.value[1])]);
    const top = Math.max(...rows.map(([, v]) => Math.abs(v)).filter(Number.isFinite), 1);
    communes.replaceChildren(...rows.slice(0, 200).flatMap(([name, v]) => [
      el("span", {}, name || "–"), bar(Math.abs(v) / top), el("span", { class: "num" }, fmtNum(v))]));
  };
  groupSelect.addEventListener("change", () => showCommunes(false));

  const loadTiles = async () => {
    const s = await status();
    const names = s.namespaces.map((n) => n.name).filter((n) => n !== OWN).sort();
    for (const ns of names) {
      if (tiles.has(ns)) continue;
      const tile = makeTile(ns);
      tiles.set(ns, tile);
      await loadTile(tile);
    }
    grid.replaceChildren(...names.map((ns) => tiles.get(ns).node));
    if (!chosen || !tiles.has(chosen)) chosen = names[0];
    for (const tl of tiles.values()) tl.node.classList.toggle("chosen", tl.ns === chosen);
    if (!names.length) grid.replaceChildren(el("p", { class: "dim" }, t("overview.empty")));
    follow();
  };

  const all = (f) => () => Promise.all([...tiles.values()].map((tl) => f(tl).catch((e) => { tl.value.textContent = "!"; tl.value.title = e.message; })));
  const show = (e) => (error.textContent = e.message);
  const loops = [];
  let stopped = false;
  (async () => {
    try {
      await loadTiles();
    } catch (e) {
      show(e);
    }
    await all(refreshValue)();
    if (stopped) return;
    main.dataset.ready = "1";
    loops.push(every(10000, all(refreshValue), show));
    loops.push(every(5000, all(refreshStatus), show));
    loops.push(every(60000, all(refreshTrend), show));
    loops.push(every(30000, loadTiles, show));
    loops.push(every(10000, () => showCommunes(groupSelect.options.length === 0), show));
  })();
  return {
    stop: () => {
      stopped = true;
      loops.forEach((l) => l.stop());
      if (source) source.close();
      for (const tl of tiles.values()) clearTimeout(tl.pending);
    },
  };
}
