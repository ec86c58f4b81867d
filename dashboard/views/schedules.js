// Schedules: each with its next fire time in its own zone; pause, resume, trigger now.

import { api, ApiError } from "../api.js";
import { badge, errorBox, h, notify, scroll } from "../ui.js";

/** A time shown on the schedule's own wall clock, with the zone named. */
export function inZone(iso, zone) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  try {
    return `${d.toLocaleString(undefined, {
      timeZone: zone || "UTC", year: "numeric", month: "short", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    })} ${zone || "UTC"}`;
  } catch {
    return `${d.toISOString()} UTC`;
  }
}

/** The declaration: the API nests it under "schedule", beside what it is doing. */
export function declaration(schedule) {
  return schedule.schedule ?? schedule;
}

export function zoneOf(schedule) {
  return declaration(schedule).cron?.timeZone || "UTC";
}

export function trigger(item) {
  const schedule = declaration(item);
  if (schedule.cron) return `cron ${schedule.cron.expression}`;
  if (schedule.every) return `every ${schedule.every.seconds} s`;
  if (schedule.at) return `once at ${schedule.at.instant}`;
  return "—";
}

/** Pause, resume or trigger one schedule; resolves true when the API agreed. */
export async function act(id, action, button) {
  button.disabled = true;
  try {
    await api(`schedules/${encodeURIComponent(id)}/${action}`, { method: "POST" });
    const done = { pause: "paused", resume: "resumed", trigger: "triggered" }[action];
    notify(`Schedule ${id} ${done}.`);
    return true;
  } catch (error) {
    notify(`Could not ${action} ${id}: ${error.message}`, "bad");
    button.disabled = false;
    return false;
  }
}

export function actions(schedule, after) {
  const button = (action, label, cls = "") =>
    h("button", {
      type: "button", class: cls, "aria-label": `${label} ${schedule.id}`,
      onclick: async (e) => { if (await act(schedule.id, action, e.target)) after(); },
    }, label);
  return [
    schedule.paused ? button("resume", "Resume", "primary") : button("pause", "Pause"),
    button("trigger", "Trigger now"),
  ];
}

export async function schedulesView(main) {
  const results = h("div", { class: "results" });
  main.append(h("div", { class: "view-head" }, h("h1", {}, "Schedules")), results);
  const load = async () => {
    try {
      const { items } = await api("schedules", { query: { pageSize: 1000 } });
      results.replaceChildren(
        items.length ? table(items, load) : h("p", { class: "empty" }, "No schedules yet."),
      );
    } catch (error) {
      const message = error instanceof ApiError && error.status === 404
        ? "This server has no schedules API yet." : error;
      results.replaceChildren(errorBox(message, "Could not list schedules"));
    }
  };
  await load();
}

function table(schedules, reload) {
  return scroll(h("table", { class: "list", "aria-label": "Schedules" },
    h("thead", {}, h("tr", {}, ["Id", "State", "Trigger", "Zone", "Next fire", "Lane", "Kind", ""]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, schedules.map((s) => h("tr", { "data-id": s.id },
      h("td", {}, h("a", { href: `#/schedules/${encodeURIComponent(s.id)}` }, s.id)),
      h("td", { "data-field": "state" }, badge(s.paused ? "paused" : "active")),
      h("td", {}, trigger(s)),
      h("td", {}, zoneOf(s)),
      h("td", { "data-field": "next" }, s.paused ? "— (paused)" : inZone(s.nextFireAt, zoneOf(s))),
      h("td", {}, declaration(s).job?.lane ?? "normal"),
      h("td", {}, declaration(s).job?.kind ?? "—"),
      h("td", {}, h("div", { class: "actions" }, actions(s, reload))),
    ))),
  ));
}
