// Hash routes: "#/jobs?status=queued" is the view path plus its parameters, so every
// search is a link that survives a reload and the back button.

/** The current view path and its parameters. */
export function currentRoute() {
  const raw = location.hash.replace(/^#/, "") || "/overview";
  const [path, search = ""] = raw.split("?");
  return { path, params: new URLSearchParams(search) };
}

/** Show the current view again with these parameters. */
export function setParams(params) {
  const { path } = currentRoute();
  const search = new URLSearchParams(
    Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""),
  ).toString();
  const target = `#${path}${search ? `?${search}` : ""}`;
  if (location.hash === target) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = target;
}
