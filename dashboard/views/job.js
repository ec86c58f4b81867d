// One job: its state, every attempt on a timeline with its error, the spec, cancel.

import { api } from "../api.js";
import {
  badge, confirmAction, errorBox, facts, fmtMs, fmtTime, h, json, notify,
} from "../ui.js";

const FINAL = ["succeeded", "dead_lettered", "cancelled"];
const REFRESH_MS = 2000;

export async function jobView(main, _params, id) {
  const body = h("div", { class: "job" });
  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " / ", id),
    h("h1", {}, `Job ${id}`),
    body,
  );
  let timer = null;
  let stopped = false;
  const refresh = async () => {
    let job;
    try {
      job = await api(`jobs/${encodeURIComponent(id)}`);
    } catch (error) {
      if (!stopped) body.replaceChildren(errorBox(error, `Could not load job ${id}`));
      return;
    }
    if (stopped) return;
    body.replaceChildren(...renderJob(job, refresh));
    main.dataset.status = job.status;
    // Follow a job that is still moving; a finished one stays as it is.
    if (!FINAL.includes(job.status)) timer = setTimeout(refresh, REFRESH_MS);
  };
  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function renderJob(job, refresh) {
  const spec = job.spec ?? {};
  const cancel = FINAL.includes(job.status)
    ? null
    : h("button", {
        type: "button", class: "danger",
        onclick: async (event) => {
          if (!(await confirmAction(`Cancel job ${job.id}? Its current attempt is abandoned.`, "Cancel job"))) return;
          event.target.disabled = true;
          try {
            await api(`jobs/${encodeURIComponent(job.id)}`, { method: "DELETE" });
            notify(`Cancel requested for ${job.id}.`);
            refresh();
          } catch (error) {
            notify(error.message, "bad");
            event.target.disabled = false;
          }
        },
      }, "Cancel job");
  const deadLetter = job.status === "dead_lettered"
    ? h("a", { href: `#/deadletters/${encodeURIComponent(job.id)}` }, "Open its dead letter")
    : null;
  return [
    h("div", { class: "summary" },
      h("p", { class: "status-line" }, "Status ", h("span", { "data-field": "status" }, badge(job.status)), " ", cancel, " ", deadLetter),
      facts([
        ["Lane", job.lane],
        ["Kind", job.kind],
        ["Tags", (job.tags ?? []).join(", ") || "—"],
        ["Run", String(job.run ?? 1)],
        ["Created", fmtTime(job.createdAt)],
        ["Started", fmtTime(job.startedAt)],
        ["Finished", fmtTime(job.finishedAt)],
        ["Start lag", fmtMs(job.startLagMs)],
        ["Next attempt", fmtTime(job.nextAttemptAt)],
        ["Dead-letter reason", job.deadLetterReason ?? "—"],
      ]),
    ),
    h("h2", {}, `Attempts (${job.attempts?.length ?? 0})`),
    timeline(job),
    attemptList(job.attempts ?? []),
    h("h2", {}, "Spec"),
    json(spec),
    job.result !== null && job.result !== undefined ? [h("h2", {}, "Result"), json(job.result)] : null,
  ];
}

/** The attempts as bars on one time axis, from submission to the end (or now). */
export function timeline(job) {
  const attempts = job.attempts ?? [];
  if (!attempts.length) return h("p", { class: "muted" }, "No attempt has started yet.");
  const t = (iso) => (iso ? new Date(iso).getTime() : null);
  const start = Math.min(t(job.createdAt) ?? Infinity, ...attempts.map((a) => t(a.startedAt)));
  const end = Math.max(
    Date.now() > start && !job.finishedAt ? Date.now() : 0,
    t(job.finishedAt) ?? 0,
    ...attempts.map((a) => t(a.endedAt) ?? t(a.startedAt)),
  );
  const span = Math.max(end - start, 1);
  const W = 900;
  const row = 26;
  const H = attempts.length * row + 28;
  const x = (ms) => 80 + ((ms - start) / span) * (W - 100);
  const bars = attempts.map((a, i) => {
    const s = t(a.startedAt);
    const e = t(a.endedAt) ?? end;
    const y = 8 + i * row;
    const label = `Run ${a.run}, attempt ${a.number}: ${a.outcome ?? "running"}, ${fmtMs(e - s)}${a.error ? ` — ${a.error}` : ""}`;
    return h("g", {},
      h("text", { x: 0, y: y + 14, class: "axis" }, `r${a.run} #${a.number}`),
      h("rect", { x: x(s), y, width: Math.max(x(e) - x(s), 3), height: row - 8, rx: 3, class: `bar o-${a.outcome ?? "running"}` },
        h("title", {}, label)),
    );
  });
  const axisY = attempts.length * row + 22;
  return h("figure", { class: "timeline" },
    h("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `Timeline of ${attempts.length} attempts over ${fmtMs(span)}` },
      bars,
      h("text", { x: 80, y: axisY, class: "axis" }, fmtTime(new Date(start).toISOString())),
      h("text", { x: W - 20, y: axisY, class: "axis", "text-anchor": "end" }, `+${fmtMs(span)}`),
    ),
  );
}

export function attemptList(attempts) {
  return h("ol", { class: "attempts", "aria-label": "Attempts" }, attempts.map((a) =>
    h("li", { class: `attempt o-${a.outcome ?? "running"}`, "data-attempt": `${a.run}-${a.number}` },
      h("div", { class: "attempt-head" },
        h("strong", {}, `Run ${a.run ?? 1} · attempt ${a.number}`), " ",
        badge(a.outcome ?? "running"), " ",
        h("span", { class: "muted" },
          `${fmtTime(a.startedAt)} · ${a.endedAt ? fmtMs(new Date(a.endedAt) - new Date(a.startedAt)) : "in progress"}`,
          a.statusCode ? ` · HTTP ${a.statusCode}` : "",
          a.retryAfterSeconds ? ` · Retry-After ${a.retryAfterSeconds} s` : ""),
      ),
      a.error ? h("p", { class: "attempt-error" }, a.error) : null,
    )));
}
