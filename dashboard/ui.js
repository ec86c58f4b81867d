// Small DOM helpers shared by the views: element building, formatting, messages.

/** Build an element: h("a", {href: "#/jobs", class: "x"}, "text", child). */
export function h(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "path", "line", "rect", "text", "title", "circle", "polyline"].includes(tag);
  const el = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "text") {
      el.textContent = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let fieldCounter = 0;

/** A labelled form control; the label's for= ties them together for screen readers. */
export function field(label, control, hint) {
  control.id ||= `f${++fieldCounter}`;
  const hintEl = hint ? h("small", { id: `${control.id}-hint`, class: "muted" }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  const error = h("small", { class: "field-error", id: `${control.id}-error`, "aria-live": "polite" });
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl, error);
}

export function select(name, options, value = "") {
  return h(
    "select",
    { name },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
  );
}

/** Mark each invalid control and say why next to it; true when none failed. */
export function showFieldErrors(form, errors) {
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const [name, reason] of Object.entries(errors)) {
    const control = form.elements[name];
    if (!control) continue;
    control.setAttribute("aria-invalid", "true");
    const slot = form.querySelector(`#${control.id}-error`);
    if (slot) slot.textContent = reason;
  }
  const first = Object.keys(errors)[0];
  if (first) form.elements[first]?.focus();
  return !first;
}

/** A readable error box; the message comes from ApiError, never a stack trace. */
export function errorBox(error, prefix = "") {
  const message = error?.status !== undefined || error?.message ? error.message : String(error);
  return h("div", { class: "error", role: "alert" }, prefix ? `${prefix}: ${message}` : message);
}

/** A short-lived message at the top of the page. */
export function notify(message, kind = "ok") {
  const box = document.getElementById("notice");
  box.textContent = message;
  box.className = `notice ${kind}`;
  box.hidden = false;
}

export function clearNotice() {
  const box = document.getElementById("notice");
  box.hidden = true;
  box.textContent = "";
}

/** Ask before a destructive action; resolves true only when confirmed. */
export function confirmAction(message, confirmLabel = "Confirm") {
  const dialog = document.getElementById("confirm");
  dialog.querySelector("#confirm-text").textContent = message;
  dialog.querySelector("#confirm-ok").textContent = confirmLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  if (ms < 3600000) return `${(ms / 60000).toFixed(1)} min`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

export function badge(status) {
  return h("span", { class: `badge s-${status ?? "none"}` }, (status ?? "—").replace("_", " "));
}

/** datetime-local value (the browser's zone) → ISO UTC, or "" when empty. */
export function localToIso(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** ISO UTC → datetime-local value in the browser's zone. */
export function isoToLocal(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

/** A definition list of label → value pairs. */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value ?? "—")]),
  );
}

export function scroll(table) {
  return h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": table.getAttribute("aria-label") ?? "table" }, table);
}
