// Vietnamese (the default) and English: every text the console shows, the domains' names,
// and numbers, times, durations and sizes written the way each language writes them. A
// missing text is reported as an error (the browser tests fail on it) and shown as its key.

const TEXT = {
  vi: {
    "nav.overview": "Tổng quan", "nav.explore": "Khám phá", "nav.health": "Chất lượng dữ liệu",
    "nav.server": "Máy chủ", "demo": "Dữ liệu mô phỏng", "big.title": "Chữ lớn (màn hình treo tường)",
    "ns.default": "(mặc định)",
    "range.15m": "15 phút qua", "range.1h": "1 giờ qua", "range.3h": "3 giờ qua", "range.6h": "6 giờ qua",
    "range.12h": "12 giờ qua", "range.24h": "24 giờ qua", "range.2d": "2 ngày qua", "range.7d": "7 ngày qua",
    "range.30d": "30 ngày qua", "range.90d": "90 ngày qua", "range.1y": "1 năm qua", "range.abs": "Khoảng cố định…",
    "status.live": "Trực tuyến", "status.late": "Chậm", "status.silent": "Im lặng", "status.unknown": "Chưa rõ",
    "explore.namespace": "Lĩnh vực", "explore.range": "Thời gian", "explore.from": "Từ", "explore.to": "Đến",
    "explore.step": "Bước (giây)", "explore.auto": "tự động", "explore.refresh": "Tự làm mới",
    "explore.refresh.off": "tắt", "explore.run": "Truy vấn", "explore.chart": "Biểu đồ", "explore.table": "Bảng",
    "explore.placeholder": "Biểu thức PromQL, ví dụ sum by (commune) (camera_people_count) — Enter để chạy",
    "explore.filter": "Lọc chú giải…", "explore.more": "… và {n} chuỗi nữa",
    "explore.badRange": "Thời điểm kết thúc phải sau thời điểm bắt đầu.",
    "explore.stats": "{series} chuỗi kết quả · đọc {read} chuỗi, {samples} mẫu · máy chủ {server} ms · tổng {total} ms · vẽ {draw} ms · bước {step} s · nguồn: {source}",
    "explore.source.raw": "mẫu gốc", "explore.source.cache": "bộ đệm kết quả + mẫu gốc",
    "explore.source.rollup": "bản tổng hợp {tier} + mẫu gốc", "explore.source.cache+rollup": "bộ đệm kết quả + bản tổng hợp {tier} + mẫu gốc", "explore.series": "Chuỗi", "explore.value": "Giá trị",
    "explore.label": "nhãn", "explore.metric": "chỉ số", "explore.function": "hàm",
    "overview.title": "Toàn tỉnh An Giang", "overview.indicator": "Chỉ số chính", "overview.trend": "Xu hướng 24 giờ",
    "overview.groupBy": "Theo", "overview.pick": "Chọn một lĩnh vực để xem theo xã, phường",
    "overview.silentSince": "Im lặng từ {time} ({for})", "overview.late": "{silent}/{total} nguồn chậm · đủ {ratio} %",
    "overview.complete": "Đủ {ratio} % trong {window} qua", "overview.empty": "Chưa có dữ liệu nào. Hãy ghi dữ liệu, hoặc chạy `iocdb serve --demo`.",
    "health.window": "Khoảng thời gian", "health.ratioOverTime": "Tỷ lệ đầy đủ theo thời gian",
    "health.ratioLater": "Máy chủ ghi tỷ lệ đầy đủ mỗi phút (lĩnh vực iocdb); biểu đồ có dữ liệu sau phút đầu tiên.",
    "health.completeness": "Độ đầy đủ theo chỉ số và đơn vị", "health.department": "Đơn vị", "health.domain": "Lĩnh vực",
    "health.metric": "Chỉ số", "health.series": "Chuỗi", "health.expected": "Mẫu dự kiến", "health.received": "Mẫu nhận được",
    "health.ratio": "Tỷ lệ", "health.gaps": "Khoảng trống", "health.silent": "Im lặng",
    "health.noIntervals": "Chưa chỉ số nào khai báo chu kỳ gửi dữ liệu trong danh mục, nên chưa đánh giá được.",
    "health.silentSources": "Nguồn im lặng ({n})", "health.lastSample": "Mẫu cuối", "health.silentFor": "Im lặng",
    "health.never": "chưa từng", "health.gapsTitle": "Khoảng trống ({n})", "health.from": "Từ", "health.to": "Đến",
    "health.missing": "Mẫu thiếu", "health.open": "đang tiếp diễn", "health.delays": "Độ trễ khi đến",
    "health.samples": "Mẫu", "health.quality": "Kiểm tra chất lượng", "health.rule": "Quy tắc", "health.action": "Xử lý",
    "health.noQuality": "Không có mẫu nào bị từ chối hay đánh dấu.", "health.events": "Sự kiện gần đây",
    "health.arrival": "Lúc đến", "health.value": "Giá trị", "health.detail": "Chi tiết",
    "rule.out_of_range": "ngoài khoảng hợp lệ", "rule.counter_decrease": "bộ đếm giảm",
    "rule.timestamp_regression": "thời gian lùi", "rule.missing_required_label": "thiếu nhãn bắt buộc",
    "rule.excessive_change": "thay đổi bất thường", "action.rejected": "từ chối", "action.flagged": "đánh dấu",
    "server.rates": "Tốc độ ghi và truy vấn", "server.namespaces": "Theo lĩnh vực", "server.series": "Chuỗi", "server.headSeries": "Chuỗi trong bộ nhớ",
    "server.headSamples": "Mẫu trong bộ nhớ", "server.head": "Bộ nhớ head", "server.index": "Chỉ mục nhãn",
    "server.segments": "Tệp phân đoạn", "server.segmentBytes": "Dung lượng phân đoạn", "server.segmentSamples": "Mẫu trên đĩa",
    "server.bytesPerSample": "Byte mỗi mẫu", "server.ingest": "Mẫu ghi", "server.writes": "Yêu cầu ghi",
    "server.queries": "Truy vấn", "server.rejected": "Mẫu bị từ chối", "server.flushes": "Lần ghi xuống đĩa",
    "server.compactions": "Lần nén gộp", "server.compactionWindow": "Cửa sổ nén gộp", "server.quarantined": "Tệp cách ly",
    "server.writesStopped": "Ghi dữ liệu", "server.stopped": "đang dừng", "server.ok": "bình thường",
    "server.watchers": "Người theo dõi trực tiếp", "server.disk": "Trên đĩa", "server.retention": "Lưu giữ",
    "server.forever": "mãi mãi",
  },
  en: {
    "nav.overview": "Overview", "nav.explore": "Explore", "nav.health": "Data health", "nav.server": "Server",
    "demo": "Simulated data", "big.title": "Large type (wall screen)", "ns.default": "(default)",
    "range.15m": "Last 15 minutes", "range.1h": "Last hour", "range.3h": "Last 3 hours", "range.6h": "Last 6 hours",
    "range.12h": "Last 12 hours", "range.24h": "Last 24 hours", "range.2d": "Last 2 days", "range.7d": "Last 7 days",
    "range.30d": "Last 30 days", "range.90d": "Last 90 days", "range.1y": "Last year", "range.abs": "Absolute range…",
    "status.live": "Live", "status.late": "Late", "status.silent": "Silent", "status.unknown": "Unknown",
    "explore.namespace": "Domain", "explore.range": "Time", "explore.from": "From", "explore.to": "To",
    "explore.step": "Step (s)", "explore.auto": "auto", "explore.refresh": "Refresh", "explore.refresh.off": "off",
    "explore.run": "Run", "explore.chart": "Chart", "explore.table": "Table",
    "explore.placeholder": "PromQL expression, e.g. sum by (commune) (camera_people_count) — Enter runs it",
    "explore.filter": "Filter the legend…", "explore.more": "… and {n} more series",
    "explore.badRange": "The end must be after the start.",
    "explore.stats": "{series} result series · read {read} series, {samples} samples · server {server} ms · total {total} ms · drawn in {draw} ms · step {step} s · served by: {source}",
    "explore.source.raw": "raw samples", "explore.source.cache": "result cache + raw samples",
    "explore.source.rollup": "{tier} rollups + raw samples", "explore.source.cache+rollup": "result cache + {tier} rollups + raw samples", "explore.series": "Series", "explore.value": "Value",
    "explore.label": "label", "explore.metric": "metric", "explore.function": "function",
    "overview.title": "An Giang province", "overview.indicator": "Key indicator", "overview.trend": "24-hour trend",
    "overview.groupBy": "By", "overview.pick": "Choose a domain to see it by commune",
    "overview.silentSince": "Silent since {time} ({for})", "overview.late": "{silent}/{total} sources late · {ratio} % complete",
    "overview.complete": "{ratio} % complete over the last {window}", "overview.empty": "No data yet. Write some, or run `iocdb serve --demo`.",
    "health.window": "Window", "health.ratioOverTime": "Completeness over time",
    "health.ratioLater": "The server writes the completeness ratio every minute (namespace iocdb): the chart fills after the first minute.",
    "health.completeness": "Completeness by indicator and department", "health.department": "Department",
    "health.domain": "Domain", "health.metric": "Indicator", "health.series": "Series", "health.expected": "Expected samples",
    "health.received": "Received samples", "health.ratio": "Ratio", "health.gaps": "Gaps", "health.silent": "Silent",
    "health.noIntervals": "No indicator declares its sending interval in the catalog yet, so nothing can be judged.",
    "health.silentSources": "Silent sources ({n})", "health.lastSample": "Last sample", "health.silentFor": "Silent for",
    "health.never": "never", "health.gapsTitle": "Gaps ({n})", "health.from": "From", "health.to": "To",
    "health.missing": "Missing samples", "health.open": "ongoing", "health.delays": "Arrival delay",
    "health.samples": "Samples", "health.quality": "Quality checks", "health.rule": "Rule", "health.action": "Action",
    "health.noQuality": "No sample was rejected or flagged.", "health.events": "Recent events",
    "health.arrival": "Arrived", "health.value": "Value", "health.detail": "Detail",
    "rule.out_of_range": "out of range", "rule.counter_decrease": "counter decrease",
    "rule.timestamp_regression": "timestamp regression", "rule.missing_required_label": "required label missing",
    "rule.excessive_change": "excessive change", "action.rejected": "rejected", "action.flagged": "flagged",
    "server.rates": "Ingest and query rates", "server.namespaces": "By domain", "server.series": "Series", "server.headSeries": "Series in memory",
    "server.headSamples": "Samples in memory", "server.head": "Head memory", "server.index": "Label index",
    "server.segments": "Segment files", "server.segmentBytes": "Segment bytes", "server.segmentSamples": "Samples on disk",
    "server.bytesPerSample": "Bytes per sample", "server.ingest": "Samples written", "server.writes": "Write requests",
    "server.queries": "Queries", "server.rejected": "Samples rejected", "server.flushes": "Flushes",
    "server.compactions": "Compactions", "server.compactionWindow": "Compaction window", "server.quarantined": "Quarantined files",
    "server.writesStopped": "Writes", "server.stopped": "stopped", "server.ok": "normal",
    "server.watchers": "Live subscribers", "server.disk": "On disk", "server.retention": "Retention",
    "server.forever": "forever",
  },
};

const DOMAINS = {
  vi: { security: "An ninh trật tự", lodging: "Lưu trú", tourism: "Du lịch", health: "Y tế", education: "Giáo dục",
    procedures: "Thủ tục hành chính", documents: "Văn bản điện tử", social: "Mạng xã hội",
    feedback: "Phản ánh hiện trường", economy: "Kinh tế – xã hội" },
  en: { security: "Security", lodging: "Lodging", tourism: "Tourism", health: "Health", education: "Education",
    procedures: "Administrative procedures", documents: "Electronic documents", social: "Social media",
    feedback: "Citizen feedback", economy: "Socio-economic indicators" },
};

const LOCALE = { vi: "vi-VN", en: "en-GB" };
const UNITS = {
  vi: { d: "ngày", h: "giờ", m: "phút", s: "giây", ms: "ms" },
  en: { d: "d", h: "h", m: "min", s: "s", ms: "ms" },
};

let current = (() => {
  const asked = new URLSearchParams(location.search).get("lang") || localStorage.getItem("iocdb.lang");
  return TEXT[asked] ? asked : "vi";
})();
document.documentElement.lang = current;

export const lang = () => current;

export function setLang(l) {
  current = TEXT[l] ? l : "vi";
  localStorage.setItem("iocdb.lang", current);
  document.documentElement.lang = current;
}

/** The text for `key` in the current language, with {name}s replaced from `vars`. */
export function t(key, vars = {}) {
  const text = TEXT[current][key];
  if (text === undefined) {
    console.error(`iocdb console: no ${current} text for ${key}`);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : `{${k}}`));
}

/** Fills every [data-i18n] element's text and [data-i18n-title] element's title. */
export function applyStatic(root) {
  for (const e of root.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
  for (const e of root.querySelectorAll("[data-i18n-title]")) e.title = t(e.dataset.i18nTitle);
}

/** A domain's name: the province's ten in words, any other namespace as it is. */
export function domainName(ns) {
  if (ns === "") return t("ns.default");
  return DOMAINS[current][ns] || ns;
}

/** A number: grouped, with as many decimals as its size deserves. */
export function fmtNum(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  const a = Math.abs(v);
  const digits = a === 0 || a >= 1000 ? 0 : a >= 10 ? 2 : a >= 0.001 ? 3 : 6;
  return new Intl.NumberFormat(LOCALE[current], { maximumFractionDigits: digits }).format(v);
}

/** A time of day, with seconds and/or the date when asked. */
export function timeOf(ms, seconds = false, date = false) {
  const options = { hour: "2-digit", minute: "2-digit", hour12: false };
  if (seconds) options.second = "2-digit";
  if (date) Object.assign(options, { day: "2-digit", month: "2-digit" });
  return new Intl.DateTimeFormat(LOCALE[current], options).format(new Date(ms));
}

/** A duration in its two largest units: "2 giờ 5 phút", "2 h 5 min". */
export function fmtDuration(ms) {
  if (!Number.isFinite(ms)) return "–";
  const u = UNITS[current];
  if (Math.abs(ms) < 1000) return `${Math.round(ms)} ${u.ms}`;
  let s = Math.round(ms / 1000);
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)} ${u[unit]}`);
      s %= size;
    }
  }
  return parts.slice(0, 2).join(" ");
}

/** Bytes in KiB, MiB, GiB. */
export function fmtBytes(n) {
  if (!Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${fmtNum(i ? Math.round(n * 10) / 10 : n)} ${units[i]}`;
}
