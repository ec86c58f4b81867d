// Overview: every lane's load, throughput, start lag against its deadline and
// dead letters, with the last hour charted; refreshed every few seconds.

import { api } from "../api.js";
import { lineChart } from "../charts.js";
import { errorBox, fmtMs, h, scroll } from "../ui.js";

const REFRESH_MS = 5000;
const LANE_CLASSES = { high: "c1", normal: "c2", low: "c3" };

export async function overviewView(main) {
  const status = h("p", { class: "muted", "aria-live": "polite" }, "Loading…");
  const body = h("div", { class: "overview" });
  main.append(
    h("div", { class: "view-head" }, h("h1", {}, "Overview"), status),
    body,
  );

  let timer = null;
  let stopped = false;
  const refresh = async () => {
    try {
      const data = await api("overview");
      if (stopped) return;
      body.replaceChildren(...renderOverview(data));
      status.textContent = `Updated ${new Date(data.generatedAt).toLocaleTimeString()} · refreshes every ${REFRESH_MS / 1000} s`;
      main.dataset.generatedAt = data.generatedAt;
    } catch (error) {
      if (stopped) return;
      body.replaceChildren(errorBox(error, "Could not load the overview"));
      status.textContent = "Retrying…";
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  };
  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function renderOverview(data) {
  const cards = data.lanes.map(laneCard);
  const table = laneTable(data.lanes);
  const labels = data.lanes[0]?.buckets.map((b) => b.at) ?? [];
  const perLane = (pick) =>
    data.lanes.map((lane) => ({
      name: lane.lane,
      cls: LANE_CLASSES[lane.lane] ?? "c1",
      values: lane.buckets.map(pick),
    }));
  const charts = h(
    "div",
    { class: "charts" },
    lineChart({ title: "Succeeded per minute, last hour", labels, series: perLane((b) => b.succeeded) }),
    lineChart({ title: "Dead-lettered per minute, last hour", labels, series: perLane((b) => b.deadLettered) }),
    ...data.lanes.map((lane) =>
      lineChart({
        title: `Start lag, ${lane.lane} lane (deadline ${fmtMs(lane.deadlineMs)})`,
        labels,
        format: fmtMs,
        threshold: { value: lane.deadlineMs, label: "deadline" },
        series: [
          { name: "p50", cls: "c1", values: lane.buckets.map((b) => b.startLagMs.p50) },
          { name: "p95", cls: "c2", values: lane.buckets.map((b) => b.startLagMs.p95) },
          { name: "p99", cls: "c3", values: lane.buckets.map((b) => b.startLagMs.p99) },
        ],
      }),
    ),
  );
  return [h("div", { class: "cards" }, cards), scroll(table), h("h2", {}, "Last hour"), charts];
}

function laneCard(lane) {
  const p95 = lane.lastHour.startLagMs.p95;
  const late = p95 !== null && p95 > lane.deadlineMs;
  return h(
    "section",
    { class: `card ${late ? "late" : ""}`, "aria-label": `${lane.lane} lane`, "data-lane": lane.lane },
    h("h2", {}, `${lane.lane} lane`),
    h("dl", { class: "numbers" },
      stat("Queued", lane.queued, lane, "queued"),
      stat("Running", lane.running, lane, "running"),
      stat("Retrying", lane.retrying, lane, "retrying"),
      stat("Dead letters", lane.deadLetters, lane, "deadLetters"),
    ),
    h("p", { class: late ? "warn" : "muted" },
      `start lag p95 ${fmtMs(p95)} of ${fmtMs(lane.deadlineMs)} deadline`),
  );
}

function stat(label, value, lane, name) {
  const shown = lane.capped && value >= 10000 ? `${value}+` : String(value);
  return h("div", {}, h("dt", {}, label), h("dd", { "data-field": name }, shown));
}

function laneTable(lanes) {
  const head = ["Lane", "Queued", "Running", "Retrying", "Throughput /min", "Succeeded (1 h)",
    "Dead-lettered (1 h)", "Lag p50", "Lag p95", "Lag p99", "Deadline", "Dead letters"];
  const row = (lane) => {
    const lag = lane.lastHour.startLagMs;
    const cell = (name, value, cls = "") => h("td", { "data-field": name, class: cls }, value);
    const lagCell = (name, v) => cell(name, fmtMs(v), v !== null && v > lane.deadlineMs ? "warn" : "");
    return h("tr", { "data-lane": lane.lane },
      h("th", { scope: "row" }, lane.lane),
      cell("queued", lane.queued),
      cell("running", lane.running),
      cell("retrying", lane.retrying),
      cell("throughput", lane.lastHour.throughputPerMinute),
      cell("succeeded", lane.lastHour.succeeded),
      cell("deadLettered", lane.lastHour.deadLettered),
      lagCell("p50", lag.p50),
      lagCell("p95", lag.p95),
      lagCell("p99", lag.p99),
      cell("deadline", fmtMs(lane.deadlineMs)),
      h("td", { "data-field": "deadLetters" },
        h("a", { href: `#/deadletters?lane=${lane.lane}` }, String(lane.deadLetters))),
    );
  };
  return h("table", { class: "lanes", "aria-label": "Lanes" },
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, lanes.map(row)),
  );
}
