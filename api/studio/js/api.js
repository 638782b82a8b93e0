// Calls to this server's /v1 API with the key from localStorage (none: anonymous access).
// EventSource cannot send an Authorization header, so job events are read with fetch() streaming.

const KEY_NAME = "soundbox.apiKey";

export function getKey() {
  return localStorage.getItem(KEY_NAME) || "";
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY_NAME, key);
  else localStorage.removeItem(KEY_NAME);
}

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(describe(status, problem, retryAfter));
    this.status = status;
    this.problem = problem || {};
    this.retryAfter = retryAfter;
  }
  get missing() { // the route does not exist on this server (an older API)
    return (this.status === 404 && this.problem.detail === "Not Found") || this.status === 405;
  }
}

function describe(status, problem, retryAfter) {
  const detail = problem?.detail || problem?.title || `HTTP ${status}`;
  const wait = retryAfter ? `; try again in ${retryAfter} s` : "";
  if (status === 0) return detail;
  if (status === 401) return `Not authorized: ${detail}. Enter an API key above.`;
  if (status === 422 && problem?.errors?.length) {
    return "Please check: " + problem.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
  }
  if (status === 429) return `Too many requests: ${detail}${wait}`;
  if (status === 503) return `The service is busy: ${detail}${wait}`;
  return detail;
}

export function authHeaders(extra = {}) {
  const headers = new Headers(extra);
  const key = getKey();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  return headers;
}

export async function request(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = { method, headers: authHeaders(headers), signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers.set("Content-Type", "application/json");
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { detail: "The server cannot be reached. Is Sound Box running?" });
  }
  if (!resp.ok) throw await errorOf(resp);
  return resp;
}

export async function errorOf(resp) {
  let problem = {};
  try { problem = await resp.json(); } catch { /* not JSON */ }
  return new ApiError(resp.status, problem, resp.headers.get("Retry-After"));
}

export async function api(path, options) {
  const resp = await request(path, options);
  if (resp.status === 204) return null;
  return resp.json();
}

// A blob: URL for something that needs the key (audio, spectrograms), for <audio>/<img>/<a>.
export async function blobUrl(path) {
  const resp = await request(path);
  return URL.createObjectURL(await resp.blob());
}

// Server-Sent Events of a job over fetch(): yields {type, id, data}; resumes with Last-Event-ID.
export async function* events(path, { signal } = {}) {
  let lastId = null;
  for (let tries = 0; tries < 6; tries++) {
    const headers = { Accept: "text/event-stream" };
    if (lastId) headers["Last-Event-ID"] = lastId;
    let resp;
    try {
      resp = await request(path, { headers, signal });
    } catch (err) {
      if (err.name === "AbortError" || err.status) throw err;
      await new Promise((r) => setTimeout(r, 500 * (tries + 1)));
      continue;
    }
    if (resp.status === 204) return;
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = { type: "message", id: null, data: [] };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let nl;
        while ((nl = buffer.search(/\r?\n/)) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(buffer[nl] === "\r" ? nl + 2 : nl + 1);
          if (line === "") {
            if (event.data.length) {
              let data = null;
              try { data = JSON.parse(event.data.join("\n")); } catch { data = event.data.join("\n"); }
              if (event.id) lastId = event.id;
              tries = 0;
              yield { type: event.type, id: event.id, data };
              if (/^job\.(succeeded|failed|canceled)$/.test(event.type)) return;
            }
            event = { type: "message", id: null, data: [] };
          } else if (!line.startsWith(":")) {
            const colon = line.indexOf(":");
            const name = colon < 0 ? line : line.slice(0, colon);
            const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (name === "event") event.type = val;
            else if (name === "data") event.data.push(val);
            else if (name === "id") event.id = val;
          }
        }
      }
    } catch (err) {
      if (err.name === "AbortError") throw err;
    }
  }
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function fmtSeconds(s) {
  return `${Number(s).toFixed(1)} s`;
}

// Save a file that needs the key: fetch it, then click a temporary download link.
export async function download(path, filename) {
  const url = await blobUrl(path);
  const a = el("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
