// Loaded first, as a classic script: records every script error, failed resource, rejected
// promise and console.error in window.iocdbErrors, where the browser tests (and a curious
// operator, in the developer tools) find them. A page shows its own API errors on screen
// instead: those are answers, not faults.
"use strict";
window.iocdbErrors = [];
window.addEventListener("error", (e) => {
  const where = e.filename ? ` (${e.filename}:${e.lineno})` : "";
  const what = e.message || `failed to load ${(e.target && (e.target.src || e.target.href)) || "a resource"}`;
  window.iocdbErrors.push(what + where);
}, true);
window.addEventListener("unhandledrejection", (e) => {
  const r = e.reason;
  window.iocdbErrors.push("unhandled rejection: " + String((r && r.stack) || r));
});
(function () {
  const original = console.error.bind(console);
  console.error = (...args) => {
    window.iocdbErrors.push(args.map(String).join(" "));
    original(...args);
  };
})();
