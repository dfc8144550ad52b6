// The HTTP API as the console calls it. Each call names its namespace with the /ns/ prefix;
// an answer that is not a success is thrown as an ApiError carrying the server's message,
// which the page shows where the data would have been.

export class ApiError extends Error {}

const prefix = (ns) => (ns ? "/ns/" + encodeURIComponent(ns) : "");

/** GET a Prometheus-shaped JSON answer and return its `data`. */
export async function get(ns, path, params = {}, signal) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    for (const x of Array.isArray(v) ? v : [v]) q.append(k, x);
  }
  const url = prefix(ns) + path + (q.size ? "?" + q : "");
  let r;
  try {
    r = await fetch(url, { headers: { Accept: "application/json" }, signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(`${path}: ${e.message}`);
  }
  let body;
  try {
    body = await r.json();
  } catch {
    throw new ApiError(`${path}: HTTP ${r.status}`);
  }
  if (body.status !== "success") throw new ApiError(body.error || `${path}: HTTP ${r.status}`);
  return body.data;
}

export const query = (ns, expr, time) => get(ns, "/api/v1/query", { query: expr, time });

export const queryRange = (ns, expr, start, end, step, stats, signal) =>
  get(ns, "/api/v1/query_range", { query: expr, start, end, step, stats: stats ? "all" : "" }, signal);

export const status = () => get("", "/api/v1/status/iocdb");

/** A sample value as the API writes it ("NaN", "+Inf" included). */
export function num(v) {
  if (v === "+Inf") return Infinity;
  if (v === "-Inf") return -Infinity;
  return Number(v);
}

/** The first value of an instant query's answer, or NaN. */
export function scalarOf(data) {
  if (data.resultType === "scalar") return num(data.result[1]);
  const first = data.result && data.result[0];
  return first ? num(first.value[1]) : NaN;
}

/** `/metrics` parsed: name → [{labels, value}]. */
export async function selfMetrics() {
  const r = await fetch("/metrics");
  if (!r.ok) throw new ApiError(`/metrics: HTTP ${r.status}`);
  const out = new Map();
  for (const line of (await r.text()).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const p of (m[2] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[p[1]] = p[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value: num(m[3]) });
  }
  return out;
}

/** A label set written as PromQL writes it: name{a="b",…}. */
export function seriesName(metric) {
  const name = metric.__name__ || "";
  const rest = Object.entries(metric)
    .filter(([k]) => k !== "__name__")
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return rest.length ? `${name}{${rest.join(", ")}}` : name || "{}";
}
