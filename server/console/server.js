// The server: storage (segments, bytes per sample, the head against its budget), ingest and
// query rates, flushes, compactions and retention, quarantine and stopped writes — read from
// the server's own metrics (/metrics) every five seconds, rates from the difference between
// two readings, and the namespaces' retention from /api/v1/status/iocdb.

import { selfMetrics, status } from "./api.js";
import { LineChart } from "./chart.js";
import { bar, el, every, table } from "./dom.js";
import { domainName, fmtBytes, fmtDuration, fmtNum, t } from "./i18n.js";

/** The sum of a metric's series whose labels pass `keep`. */
export function total(metrics, name, keep = () => true) {
  return (metrics.get(name) || []).filter((s) => keep(s.labels)).reduce((n, s) => n + s.value, 0);
}

/** A metric's series by one label. */
function byLabel(metrics, name, label) {
  const out = new Map();
  for (const s of metrics.get(name) || []) out.set(s.labels[label], (out.get(s.labels[label]) || 0) + s.value);
  return out;
}

const isQuery = (l) => /^\/api\/v1\/query(_range)?$/.test(l.route || "") || /\.Query\//.test(l.method || "");

export function start(main) {
  const error = el("div", { class: "error", role: "alert" });
  const cards = el("div", { class: "cards", id: "cards" });
  const chartBox = el("div", { id: "rates" });
  const chart = new LineChart(chartBox, 220);
  const namespaces = el("div", { id: "namespaces" });
  main.append(el("h1", {}, t("nav.server")), error, cards, el("h2", {}, t("server.rates")), chartBox,
    el("h2", {}, t("server.namespaces")), namespaces);
  let previous = null;
  const history = { ingest: [], queries: [] };

  const load = async () => {
    const [m, s] = await Promise.all([selfMetrics(), status()]);
    const now = Date.now();
    const counters = {
      accepted: total(m, "iocdb_samples_accepted_total"),
      writes: total(m, "iocdb_write_requests_total"),
      queries: total(m, "iocdb_http_requests_total", isQuery) + total(m, "iocdb_grpc_requests_total", isQuery),
      byNamespace: byLabel(m, "iocdb_samples_accepted_by_namespace_total", "namespace"),
    };
    const rate = (key) => (previous ? (counters[key] - previous[key]) / ((now - previous.at) / 1000) : NaN);
    const ingestRate = rate("accepted");
    const queryRate = rate("queries");
    if (previous) {
      history.ingest.push([now, ingestRate]);
      history.queries.push([now, queryRate]);
      for (const h of Object.values(history)) if (h.length > 720) h.shift();
    }
    const segmentBytes = total(m, "iocdb_segment_bytes");
    const segmentSamples = total(m, "iocdb_segment_samples");
    const headBytes = total(m, "iocdb_head_bytes");
    const stopped = total(m, "iocdb_writes_stopped");
    const card = (key, value, extra) => el("div", { class: "card", "data-key": key },
      el("div", { class: "k" }, t("server." + key)), el("div", { class: "v" }, value), extra);
    cards.replaceChildren(
      card("series", fmtNum(total(m, "iocdb_series"))),
      card("headSeries", fmtNum(total(m, "iocdb_head_series"))),
      card("headSamples", fmtNum(total(m, "iocdb_head_samples"))),
      card("head", `${fmtBytes(headBytes)} / ${fmtBytes(s.headBudgetBytes)}`, bar(headBytes / s.headBudgetBytes, headBytes > 0.8 * s.headBudgetBytes ? "warn" : "")),
      card("index", fmtBytes(total(m, "iocdb_index_label_bytes"))),
      card("segments", fmtNum(total(m, "iocdb_segments"))),
      card("segmentBytes", fmtBytes(segmentBytes)),
      card("segmentSamples", fmtNum(segmentSamples)),
      card("bytesPerSample", segmentSamples ? fmtNum(segmentBytes / segmentSamples) : "–"),
      card("ingest", fmtNum(ingestRate) + " /s"),
      card("writes", fmtNum(rate("writes")) + " /s"),
      card("queries", fmtNum(queryRate) + " /s"),
      card("rejected", fmtNum(total(m, "iocdb_samples_rejected_total"))),
      card("flushes", fmtNum(total(m, "iocdb_flushes_total"))),
      card("compactions", fmtNum(total(m, "iocdb_compactions_total"))),
      card("compactionWindow", [s.compactionWindow, ...(s.compactionAgedWindows || [])]
        .map((w) => fmtDuration(w * 1000)).join(" → ")),
      card("quarantined", fmtNum(total(m, "iocdb_quarantined_files"))),
      card("writesStopped", stopped > 0 ? t("server.stopped") : t("server.ok")),
      card("watchers", fmtNum(total(m, "iocdb_watch_subscribers"))));
    const headBy = byLabel(m, "iocdb_head_bytes_by_namespace", "namespace");
    const diskBy = byLabel(m, "iocdb_disk_bytes_by_namespace", "namespace");
    namespaces.replaceChildren(table([t("health.domain"), [t("server.series"), "num"], [t("server.head"), "num"],
      [t("server.disk"), "num"], [t("server.ingest"), "num"], t("server.retention")],
    s.namespaces.map((n) => {
      const before = previous ? previous.byNamespace.get(n.name) : undefined;
      const r = before === undefined ? NaN : ((counters.byNamespace.get(n.name) || 0) - before) / ((now - previous.at) / 1000);
      return [domainName(n.name), [fmtNum(n.series), "num"], [fmtBytes(headBy.get(n.name) || 0), "num"],
        [fmtBytes(diskBy.get(n.name) || 0), "num"], [fmtNum(r) + " /s", "num"],
        n.retention === null ? t("server.forever") : fmtDuration(n.retention * 1000)];
    })));
    previous = { ...counters, at: now };
    if (history.ingest.length) {
      chart.draw([
        { name: t("server.ingest"), colour: "#4fd1c5", points: history.ingest },
        { name: t("server.queries"), colour: "#f6ad55", points: history.queries },
      ], history.ingest[0][0], now);
    }
    main.dataset.ready = "1";
  };
  const loop = every(5000, load, (e) => { error.textContent = e.message; main.dataset.ready = "1"; });
  return { stop: () => { loop.stop(); chart.destroy(); } };
}
