// The console's shell: the page router (location.hash: #/page?params), the language and
// large-type switches, the clock, and each page's life cycle — a page renders into <main>,
// sets main.dataset.ready once its first data is drawn, and is stopped when left, so that
// its timers and requests never outlive it.

import { applyStatic, lang, setLang, t, timeOf } from "./i18n.js";
import { status } from "./api.js";
import * as explore from "./explore.js";
import * as overview from "./overview.js";
import * as health from "./health.js";
import * as server from "./server.js";

const pages = { overview, explore, health, server };
const main = document.getElementById("main");
let current = null;

/** The hash's page name and parameters. */
function route() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const name = pages[path] ? path : "overview";
  return { name, params: new URLSearchParams(query || "") };
}

function show() {
  if (current && current.stop) current.stop();
  const { name, params } = route();
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === name);
  main.replaceChildren();
  delete main.dataset.ready;
  main.dataset.page = name;
  document.title = `${t("nav." + name)} · iocdb`;
  current = pages[name].start(main, params) || null;
}

function setupSwitches() {
  const langSelect = document.getElementById("lang");
  langSelect.value = lang();
  langSelect.addEventListener("change", () => {
    setLang(langSelect.value);
    applyStatic(document);
    show();
  });
  const big = document.getElementById("big");
  const setBig = (on) => {
    document.body.classList.toggle("big", on);
    big.setAttribute("aria-pressed", String(on));
    localStorage.setItem("iocdb.big", on ? "1" : "0");
  };
  setBig(localStorage.getItem("iocdb.big") === "1" || new URLSearchParams(location.search).has("big"));
  big.addEventListener("click", () => {
    setBig(!document.body.classList.contains("big"));
    window.dispatchEvent(new Event("resize"));
  });
  const clock = document.getElementById("clock");
  const tick = () => (clock.textContent = timeOf(Date.now(), true));
  tick();
  setInterval(tick, 1000);
}

applyStatic(document);
setupSwitches();
window.addEventListener("hashchange", show);
show();
status()
  .then((s) => (document.getElementById("demo-badge").hidden = !s.demo))
  .catch(() => {});
