// Dead letters: filter and page through them, replay one, or replay or purge every
// one matching the filter after a confirmation that says how many.

import { api, collect } from "../api.js";
import { setParams } from "../router.js";
import {
  confirmAction, errorBox, field, fmtTime, h, isoToLocal, localToIso, notify, scroll,
  select, showFieldErrors,
} from "../ui.js";
import { LANES } from "./jobs.js";

const KIND = /^[A-Za-z0-9_.-]{1,64}$/;
// The server replays at most this many per call; say so instead of pretending.
const MAX_BULK = 1000;

export async function deadLettersView(main, params) {
  const form = filterForm(params);
  const bulk = h("div", { class: "bulk", "aria-live": "polite" });
  const results = h("div", { class: "results" });
  main.append(
    h("div", { class: "view-head" }, h("h1", {}, "Dead letters")),
    form,
    bulkBar(params, bulk),
    bulk,
    results,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = readForm(form);
    if (query) setParams(query);
  });
  form.addEventListener("reset", () => setTimeout(() => setParams({}), 0));
  await list(results, filterOf(params));
}

function filterOf(params) {
  return Object.fromEntries(
    ["lane", "kind", "source", "since", "until"].map((n) => [n, params.get(n)]).filter(([, v]) => v),
  );
}

function filterForm(params) {
  return h(
    "form",
    { class: "filters", "aria-label": "Filter dead letters", novalidate: true },
    field("Lane", select("lane", [["", "any"], ...LANES.map((l) => [l, l])], params.get("lane") ?? "")),
    field("Kind", h("input", { name: "kind", value: params.get("kind") ?? "", autocomplete: "off" })),
    field("Source", select("source", [["", "any"], ["job", "job (replayable)"], ["queue", "queue message"]], params.get("source") ?? "")),
    field("Since", h("input", { name: "since", type: "datetime-local", value: isoToLocal(params.get("since")) })),
    field("Until", h("input", { name: "until", type: "datetime-local", value: isoToLocal(params.get("until")) })),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Filter"),
      h("button", { type: "reset" }, "Clear")),
  );
}

function readForm(form) {
  const value = (name) => form.elements[name].value.trim();
  const errors = {};
  const query = { lane: value("lane"), kind: value("kind"), source: value("source") };
  if (query.kind && !KIND.test(query.kind)) errors.kind = "letters, digits, _ . - only";
  query.since = localToIso(value("since"));
  query.until = localToIso(value("until"));
  if (query.since === null) errors.since = "not a valid date and time";
  if (query.until === null) errors.until = "not a valid date and time";
  if (query.since && query.until && query.since > query.until) errors.until = "must not be before “since”";
  return showFieldErrors(form, errors) ? query : null;
}

function describe(filter) {
  const parts = Object.entries(filter).map(([k, v]) => `${k}=${v}`);
  return parts.length ? `matching ${parts.join(", ")}` : "(no filter: all of them)";
}

function bulkBar(params, out) {
  const filter = filterOf(params);
  const replayable = filter.source !== "queue";
  return h("div", { class: "actions bulk-bar" },
    h("button", {
      type: "button", disabled: !replayable,
      title: replayable ? null : "queue dead letters hold no valid job to replay",
      onclick: () => replayAll(filter, out),
    }, "Replay all matching…"),
    h("button", { type: "button", class: "danger", onclick: () => purgeAll(filter, out) }, "Purge all matching…"),
  );
}

async function replayAll(filter, out) {
  // The server replays job dead letters only, so count exactly those.
  const query = { ...filter, source: "job" };
  out.replaceChildren(h("p", { class: "muted" }, "Counting…"));
  let found;
  try {
    found = await collect("deadletters", query, MAX_BULK + 1);
  } catch (error) {
    out.replaceChildren(errorBox(error, "Could not count the dead letters"));
    return;
  }
  const n = found.items.length;
  if (!n) {
    out.replaceChildren(h("p", {}, `No replayable dead letter ${describe(filter)}.`));
    return;
  }
  const shown = n > MAX_BULK ? `the first ${MAX_BULK} of more than ${MAX_BULK}` : String(n);
  out.replaceChildren();
  if (!(await confirmAction(`Replay ${shown} dead letter${n === 1 ? "" : "s"} ${describe(filter)}?`, `Replay ${Math.min(n, MAX_BULK)}`))) return;
  out.replaceChildren(h("p", { class: "muted" }, "Replaying…"));
  try {
    const { lane, kind, since, until } = filter;
    const result = await api("deadletters/replay", { method: "POST", query: { lane, kind, since, until } });
    out.replaceChildren(bulkReport("Replayed", result.replayed, result.failed));
    notify(`Replayed ${result.replayed}; ${result.failed.length} failed.`, result.failed.length ? "bad" : "ok");
  } catch (error) {
    out.replaceChildren(errorBox(error, "Replay failed"));
  }
}

async function purgeAll(filter, out) {
  out.replaceChildren(h("p", { class: "muted" }, "Counting…"));
  let found;
  try {
    found = await collect("deadletters", filter, MAX_BULK);
  } catch (error) {
    out.replaceChildren(errorBox(error, "Could not count the dead letters"));
    return;
  }
  const ids = found.items.map((l) => l.id);
  if (!ids.length) {
    out.replaceChildren(h("p", {}, `No dead letter ${describe(filter)}.`));
    return;
  }
  const more = found.complete ? "" : ` (the first ${ids.length}; run it again for the rest)`;
  out.replaceChildren();
  if (!(await confirmAction(`Purge ${ids.length} dead letter${ids.length === 1 ? "" : "s"} ${describe(filter)}${more}? This cannot be undone.`, `Purge ${ids.length}`))) return;
  const progress = h("progress", { max: ids.length, value: 0, "aria-label": "Purge progress" });
  out.replaceChildren(progress);
  const failed = [];
  let done = 0;
  for (const id of ids) {
    try {
      await api(`deadletters/${encodeURIComponent(id)}`, { method: "DELETE" });
      done += 1;
    } catch (error) {
      failed.push({ id, reason: error.message });
    }
    progress.value = done + failed.length;
  }
  out.replaceChildren(bulkReport("Purged", done, failed));
  notify(`Purged ${done}; ${failed.length} failed.`, failed.length ? "bad" : "ok");
}

/** What a bulk action did, with every item that failed and why. */
function bulkReport(verb, count, failed) {
  return h("div", { class: failed.length ? "report bad" : "report ok", role: "status" },
    h("p", {}, `${verb} ${count}. ${failed.length ? `${failed.length} failed:` : "None failed."}`),
    failed.length
      ? h("ul", { class: "failures" }, failed.map((f) => h("li", {}, h("code", {}, f.id), ` — ${f.reason}`)))
      : null,
  );
}

async function list(results, filter) {
  const trail = [];
  const load = async (continuation) => {
    try {
      const page = await api("deadletters", { query: { ...filter, pageSize: 50, continuation } });
      trail.push(continuation);
      results.replaceChildren(
        page.items.length ? table(page.items, () => load(trail.pop())) : h("p", { class: "empty" }, "No dead letter matches."),
        h("div", { class: "pager" },
          h("button", { type: "button", disabled: trail.length <= 1, onclick: () => { trail.pop(); load(trail.pop()); } }, "Previous page"),
          h("span", { class: "muted" }, `Page ${trail.length}`),
          h("button", { type: "button", disabled: !page.continuation, onclick: () => load(page.continuation) }, "Next page")),
      );
    } catch (error) {
      results.replaceChildren(errorBox(error, "Could not list dead letters"));
    }
  };
  await load(undefined);
}

function table(letters, reload) {
  return scroll(h("table", { class: "list", "aria-label": "Dead letters" },
    h("thead", {}, h("tr", {}, ["Id", "Lane", "Kind", "Source", "Reason", "Dead-lettered", "Attempts", ""]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, letters.map((l) => h("tr", { "data-id": l.id },
      h("td", {}, h("a", { href: `#/deadletters/${encodeURIComponent(l.id)}` }, l.id)),
      h("td", {}, l.lane || "—"),
      h("td", {}, l.kind || "—"),
      h("td", {}, l.source),
      h("td", { class: "reason" }, l.reason),
      h("td", {}, fmtTime(l.deadLetteredAt)),
      h("td", { class: "num" }, String(l.attempts?.length ?? 0)),
      h("td", {}, l.source === "job"
        ? h("button", { type: "button", "aria-label": `Replay ${l.id}`, onclick: (e) => replayOne(l.id, e.target, reload) }, "Replay")
        : null),
    ))),
  ));
}

export async function replayOne(id, button, after) {
  button.disabled = true;
  try {
    await api(`deadletters/${encodeURIComponent(id)}/replay`, { method: "POST" });
    notify(`Replayed ${id}: it is queued again.`);
    after?.(id);
  } catch (error) {
    notify(`Could not replay ${id}: ${error.message}`, "bad");
    button.disabled = false;
  }
}
