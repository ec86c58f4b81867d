// The page's shell: hash routing between views, and the API key field.

import { getKey, setKey } from "./api.js";
import { currentRoute } from "./router.js";
import { clearNotice, errorBox, h } from "./ui.js";
import { overviewView } from "./views/overview.js";
import { jobsView } from "./views/jobs.js";
import { jobView } from "./views/job.js";
import { deadLettersView } from "./views/deadletters.js";
import { deadLetterView } from "./views/deadletter.js";
import { schedulesView } from "./views/schedules.js";
import { scheduleView } from "./views/schedule.js";

// [pattern, view, nav section]; a view renders into main and may return a cleanup.
const ROUTES = [
  [/^\/overview$/, overviewView, "overview"],
  [/^\/jobs$/, jobsView, "jobs"],
  [/^\/jobs\/(.+)$/, jobView, "jobs"],
  [/^\/deadletters$/, deadLettersView, "deadletters"],
  [/^\/deadletters\/(.+)$/, deadLetterView, "deadletters"],
  [/^\/schedules$/, schedulesView, "schedules"],
  [/^\/schedules\/(.+)$/, scheduleView, "schedules"],
];

let cleanup = null;

async function render() {
  if (cleanup) cleanup();
  cleanup = null;
  clearNotice();
  const { path, params } = currentRoute();
  const main = document.getElementById("view");
  const match = ROUTES.map(([re, view, section]) => [re.exec(path), view, section]).find(([m]) => m);
  for (const link of document.querySelectorAll("nav a")) {
    link.toggleAttribute("aria-current", link.dataset.view === match?.[2]);
    if (link.dataset.view === match?.[2]) link.setAttribute("aria-current", "page");
  }
  main.replaceChildren();
  if (!match) {
    main.append(h("h1", {}, "Not found"), errorBox(`No view at ${path}.`));
    return;
  }
  const [m, view] = match;
  try {
    const args = m.slice(1).map(decodeURIComponent);
    cleanup = (await view(main, params, ...args)) ?? null;
  } catch (error) {
    main.append(errorBox(error));
  }
}

function setUpKey() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  const state = document.getElementById("key-state");
  const show = () => {
    state.textContent = getKey() ? "key set for this tab" : "no key";
  };
  input.value = getKey();
  show();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setKey(input.value.trim());
    show();
    render();
  });
}

// The base URL is the folder; make the document URL match it so hash links stay here.
if (!location.pathname.endsWith("/")) {
  history.replaceState(null, "", `${location.pathname}/${location.search}${location.hash}`);
}
setUpKey();
window.addEventListener("hashchange", render);
render();
