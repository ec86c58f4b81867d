// Every call to the Duralane HTTP API goes through here: the key, JSON, and errors
// turned into one readable sentence (never a stack trace).

const KEY_NAME = "duralane.apiKey";

/** The API root, derived from where the page is served (…/api/dashboard/ → …/api/). */
export const apiRoot = new URL("../", document.baseURI);

export function getKey() {
  return sessionStorage.getItem(KEY_NAME) ?? "";
}

export function setKey(value) {
  if (value) sessionStorage.setItem(KEY_NAME, value);
  else sessionStorage.removeItem(KEY_NAME);
}

/** An API failure with a message fit to show on the page. */
export class ApiError extends Error {
  constructor(status, message, fieldErrors = []) {
    super(message);
    this.status = status;
    this.fieldErrors = fieldErrors;
  }
}

/** Call the API; resolve to the JSON body, or reject with an ApiError. */
export async function api(path, { method = "GET", query = {}, body } = {}) {
  const url = new URL(path, apiRoot);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") {
      url.searchParams.set(name, value);
    }
  }
  const headers = { Accept: "application/json" };
  const key = getKey();
  if (key) headers["x-functions-key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";

  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, `Cannot reach the Duralane API at ${apiRoot.pathname}: is it running?`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, describe(response.status, data), data?.errors ?? []);
  }
  return data;
}

/** One readable sentence for a failed call: the API's own reason, else the status. */
function describe(status, data) {
  if (status === 401 || status === 403) {
    return `The API refused the request (${status}): enter the API key or function key at the top of the page.`;
  }
  // Only the JSON body's error and field reasons are shown: any other body may be
  // a host's or proxy's page, or a stack trace, and neither explains anything.
  const message = typeof data?.error === "string" ? oneLine(data.error) : "";
  const details = (Array.isArray(data?.errors) ? data.errors : [])
    .filter((e) => typeof e?.reason === "string")
    .map((e) => oneLine(e.field ? `${e.field}: ${e.reason}` : e.reason));
  const reason = [message, details.join("; ")].filter(Boolean).join(" — ");
  if (reason) return `${reason} (HTTP ${status})`;
  return status >= 500 ? `Server error (HTTP ${status})` : `Request failed (HTTP ${status})`;
}

/** The first line of a server's message, trimmed to a sentence's length; never a trace. */
function oneLine(text) {
  const line = text.split("\n").find((l) => l.trim()) ?? "";
  return /^\s*Traceback \(/.test(line) ? "" : line.trim().slice(0, 200);
}

/** Every item matching a list query, following continuations, up to a limit. */
export async function collect(path, query, limit = 10000, onProgress = () => {}) {
  const items = [];
  let continuation;
  do {
    const page = await api(path, { query: { ...query, pageSize: 1000, continuation } });
    items.push(...page.items);
    onProgress(items.length);
    continuation = page.continuation;
  } while (continuation && items.length < limit);
  return { items, complete: !continuation };
}
