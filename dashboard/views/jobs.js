// Jobs: search by status, lane, kind, tag, id and time range, a page at a time.

import { api, ApiError } from "../api.js";
import { setParams } from "../router.js";
import {
  badge, errorBox, field, fmtTime, h, isoToLocal, localToIso, scroll, select, showFieldErrors,
} from "../ui.js";

export const STATUSES = ["queued", "running", "failed", "succeeded", "dead_lettered", "cancelled"];
export const LANES = ["high", "normal", "low"];
const ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const TAG = /^[A-Za-z0-9_.:\/=-]{1,64}$/;
const KIND = /^[A-Za-z0-9_.-]{1,64}$/;

export async function jobsView(main, params) {
  const form = searchForm(params);
  const results = h("div", { class: "results", "aria-live": "polite" });
  main.append(h("div", { class: "view-head" }, h("h1", {}, "Jobs")), form, results);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = readForm(form);
    if (query) setParams(query);
  });
  form.addEventListener("reset", () => setTimeout(() => setParams({}), 0));
  await show(results, params);
}

function searchForm(params) {
  const input = (name, attrs = {}) =>
    h("input", { name, value: params.get(name) ?? "", autocomplete: "off", ...attrs });
  return h(
    "form",
    { class: "filters", "aria-label": "Search jobs", novalidate: true },
    field("Job id", input("id", { placeholder: "exact id" })),
    field("Status", select("status", [["", "any"], ...STATUSES.map((s) => [s, s.replace("_", " ")])], params.get("status") ?? "")),
    field("Lane", select("lane", [["", "any"], ...LANES.map((l) => [l, l])], params.get("lane") ?? "")),
    field("Kind", input("kind", { placeholder: "http, probe…" })),
    field("Tag", input("tag", { placeholder: "billing" })),
    field("Created since", h("input", { name: "since", type: "datetime-local", value: isoToLocal(params.get("since")) })),
    field("Created until", h("input", { name: "until", type: "datetime-local", value: isoToLocal(params.get("until")) })),
    field("Per page", select("pageSize", [["20", "20"], ["50", "50"], ["100", "100"]], params.get("pageSize") ?? "50")),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Search"),
      h("button", { type: "reset" }, "Clear")),
  );
}

/** The form's values as query parameters, or null after marking what is wrong. */
function readForm(form) {
  const value = (name) => form.elements[name].value.trim();
  const errors = {};
  const query = {
    id: value("id"), status: value("status"), lane: value("lane"), kind: value("kind"),
    tag: value("tag"), pageSize: value("pageSize"),
  };
  if (query.id && !ID.test(query.id)) {
    errors.id = "1 to 64 letters, digits, _ . : -, starting with a letter or digit";
  }
  if (query.kind && !KIND.test(query.kind)) errors.kind = "letters, digits, _ . - only";
  if (query.tag && !TAG.test(query.tag)) errors.tag = "1 to 64 letters, digits, _ . : / = -";
  query.since = localToIso(value("since"));
  query.until = localToIso(value("until"));
  if (query.since === null) errors.since = "not a valid date and time";
  if (query.until === null) errors.until = "not a valid date and time";
  if (query.since && query.until && query.since > query.until) {
    errors.until = "must not be before “since”";
  }
  return showFieldErrors(form, errors) ? query : null;
}

async function show(results, params) {
  const id = params.get("id");
  if (id) {
    try {
      const job = await api(`jobs/${encodeURIComponent(id)}`);
      results.replaceChildren(jobTable([job], "Job found"));
    } catch (error) {
      const message = error instanceof ApiError && error.status === 404
        ? `No job has the id “${id}”.` : error;
      results.replaceChildren(errorBox(message));
    }
    return;
  }
  const query = Object.fromEntries(
    ["status", "lane", "kind", "tag", "since", "until", "pageSize"]
      .map((n) => [n, params.get(n)]).filter(([, v]) => v),
  );
  const trail = [];
  const load = async (continuation) => {
    results.setAttribute("aria-busy", "true");
    try {
      const page = await api("jobs", { query: { ...query, continuation } });
      trail.push(continuation);
      const pager = h("div", { class: "pager" },
        h("button", {
          type: "button", disabled: trail.length <= 1,
          onclick: () => { trail.pop(); load(trail.pop()); },
        }, "Previous page"),
        h("span", { class: "muted" }, `Page ${trail.length}`),
        h("button", {
          type: "button", disabled: !page.continuation,
          onclick: () => load(page.continuation),
        }, "Next page"),
      );
      results.replaceChildren(
        page.items.length ? jobTable(page.items, "Jobs") : h("p", { class: "empty" }, "No job matches these filters."),
        pager,
      );
    } catch (error) {
      results.replaceChildren(errorBox(error, "Search failed"));
    } finally {
      results.removeAttribute("aria-busy");
    }
  };
  await load(undefined);
}

export function jobTable(jobs, label) {
  return scroll(h("table", { class: "list", "aria-label": label },
    h("thead", {}, h("tr", {}, ["Id", "Status", "Lane", "Kind", "Tags", "Created", "Attempts"]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, jobs.map((job) => h("tr", { "data-id": job.id },
      h("td", {}, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.id)),
      h("td", {}, badge(job.status)),
      h("td", {}, job.lane),
      h("td", {}, job.kind),
      h("td", {}, (job.tags ?? []).join(", ")),
      h("td", {}, fmtTime(job.createdAt)),
      h("td", { class: "num" }, String(job.attempts?.length ?? 0)),
    ))),
  ));
}
