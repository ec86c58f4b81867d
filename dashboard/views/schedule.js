// One schedule: its policy, upcoming fires in its zone, recent runs with fire lag.

import { api } from "../api.js";
import { badge, errorBox, facts, fmtMs, h, json, scroll } from "../ui.js";
import { actions, declaration, inZone, trigger, zoneOf } from "./schedules.js";

export async function scheduleView(main, _params, id) {
  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/schedules" }, "Schedules"), " / ", id),
    h("h1", {}, `Schedule ${id}`),
  );
  const body = h("div", {});
  main.append(body);
  const load = async () => {
    let schedule;
    try {
      schedule = await api(`schedules/${encodeURIComponent(id)}`);
    } catch (error) {
      body.replaceChildren(errorBox(error, `Could not load schedule ${id}`));
      return;
    }
    const zone = zoneOf(schedule);
    const parts = [
      h("div", { class: "actions" }, actions(schedule, load)),
      facts([
        ["State", badge(schedule.paused ? "paused" : "active")],
        ["Trigger", trigger(schedule)],
        ["Zone", zone],
        ["Next fire", schedule.paused ? "— (paused)" : inZone(schedule.nextFireAt, zone)],
        ["Jitter", `${declaration(schedule).jitterSeconds ?? 0} s`],
        ["Overlap", declaration(schedule).overlap ?? "skip"],
        ["Misfire", declaration(schedule).misfire ?? "run_once"],
        ["Active runs", String(schedule.activeRunIds?.length ?? 0)],
      ]),
    ];
    parts.push(h("h2", {}, "Upcoming fires"), await preview(id, zone));
    parts.push(h("h2", {}, "Recent runs"), await runs(id, zone));
    parts.push(h("h2", {}, "Definition"), json(schedule));
    body.replaceChildren(...parts);
  };
  await load();
}

async function preview(id, zone) {
  try {
    const data = await api(`schedules/${encodeURIComponent(id)}/preview`, { query: { count: 5 } });
    return h("ol", { class: "fires", "aria-label": "Upcoming fires" },
      data.fires.map((fire) => h("li", {}, inZone(fire.atUtc, data.timeZone ?? zone))));
  } catch (error) {
    return errorBox(error, "Could not preview the next fires");
  }
}

async function runs(id, zone) {
  try {
    const { items } = await api(`schedules/${encodeURIComponent(id)}/runs`, { query: { pageSize: 20 } });
    if (!items.length) return h("p", { class: "empty" }, "No runs yet.");
    return scroll(h("table", { class: "list", "aria-label": "Recent runs" },
      h("thead", {}, h("tr", {}, ["Due", "Started", "Fire lag", "Why", "Job", "Run"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, items.map((r) => h("tr", { "data-id": r.id },
        h("td", {}, inZone(r.scheduledAt ?? r.firedAt, zone)),
        h("td", {}, inZone(r.startedAt, zone)),
        h("td", { class: "num", "data-field": "fireLag" }, fmtMs(r.fireLagMs)),
        h("td", {}, r.reason ?? "—"),
        h("td", {}, r.jobId ? h("a", { href: `#/jobs/${encodeURIComponent(r.jobId)}` }, r.jobId) : "—"),
        h("td", {}, r.status ? badge(r.status) : "—"),
      ))),
    ));
  } catch (error) {
    return errorBox(error, "Could not list runs");
  }
}
