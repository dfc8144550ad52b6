// Small helpers every page shares: building elements, the page's URL parameters, and a
// poller that runs a task every few seconds without overlapping itself.

/** An element: el("td", {class: "num"}, "42", child, …). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k in e && typeof v !== "string") e[k] = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c);
  return e;
}

/** Rewrites the current page's hash parameters without reloading (a shareable URL). */
export function setParams(params) {
  const page = location.hash.replace(/^#\/?/, "").split("?")[0] || "overview";
  history.replaceState(null, "", `#/${page}?${params}`);
}

/**
 * Runs `task` now and then every `ms`, never two at once; `stop()` ends it. A failing task
 * hands its error to `onError` and is tried again at the next tick.
 */
export function every(ms, task, onError) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      await task();
    } catch (e) {
      if (!stopped && onError) onError(e);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return { stop: () => { stopped = true; clearTimeout(timer); } };
}

/** A table from a header row and body rows (each an array of cells or [text, class]). */
export function table(head, rows) {
  const cell = (tag, c) => (Array.isArray(c) ? el(tag, { class: c[1] }, c[0]) : el(tag, {}, c));
  return el("table", {},
    el("thead", {}, el("tr", {}, head.map((h) => cell("th", h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => cell("td", c))))));
}

/** A horizontal bar for a fraction in [0, 1]. */
export function bar(fraction, cls = "") {
  const f = Number.isFinite(fraction) ? Math.max(0, Math.min(1, fraction)) : 0;
  const fill = el("span");
  // Through the CSSOM: the content security policy refuses style attributes.
  fill.style.width = `${(f * 100).toFixed(1)}%`;
  return el("div", { class: `bar ${cls}`, title: `${(f * 100).toFixed(1)} %` }, fill);
}
