// One dead letter: why it failed, each attempt's error, the original spec; replay, purge.

import { api } from "../api.js";
import { confirmAction, errorBox, facts, fmtTime, h, json, notify } from "../ui.js";
import { attemptList } from "./job.js";
import { replayOne } from "./deadletters.js";

export async function deadLetterView(main, _params, id) {
  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/deadletters" }, "Dead letters"), " / ", id),
    h("h1", {}, `Dead letter ${id}`),
  );
  let letter;
  try {
    letter = await api(`deadletters/${encodeURIComponent(id)}`);
  } catch (error) {
    main.append(errorBox(error, `Could not load dead letter ${id}`));
    return;
  }
  const replay = letter.source === "job"
    ? h("button", {
        type: "button", class: "primary",
        onclick: (e) => replayOne(id, e.target, () => { location.hash = `#/jobs/${encodeURIComponent(letter.jobId || id)}`; }),
      }, "Replay")
    : null;
  const purge = h("button", {
    type: "button", class: "danger",
    onclick: async (e) => {
      if (!(await confirmAction(`Purge dead letter ${id}? This cannot be undone.`, "Purge"))) return;
      e.target.disabled = true;
      try {
        await api(`deadletters/${encodeURIComponent(id)}`, { method: "DELETE" });
        notify(`Purged ${id}.`);
        location.hash = "#/deadletters";
      } catch (error) {
        notify(`Could not purge ${id}: ${error.message}`, "bad");
        e.target.disabled = false;
      }
    },
  }, "Purge");
  main.append(
    h("div", { class: "actions" }, replay, purge,
      letter.jobId ? h("a", { href: `#/jobs/${encodeURIComponent(letter.jobId)}` }, "Open the job") : null),
    h("p", { class: "reason-box", "data-field": "reason" }, h("strong", {}, "Reason: "), letter.reason),
    facts([
      ["Source", letter.source === "queue" ? `queue ${letter.queue} (message ${letter.messageId})` : "job"],
      ["Lane", letter.lane || "—"],
      ["Kind", letter.kind || "—"],
      ["Run", letter.run ? String(letter.run) : "—"],
      ["Dead-lettered", fmtTime(letter.deadLetteredAt)],
    ]),
    h("h2", {}, `Attempts (${letter.attempts?.length ?? 0})`),
    letter.attempts?.length ? attemptList(letter.attempts) : h("p", { class: "muted" }, "None: it never ran."),
    h("h2", {}, letter.source === "queue" ? "Message body" : "Original spec"),
    letter.source === "queue" ? h("pre", { class: "json" }, letter.body ?? "") : json(letter.spec),
  );
}
