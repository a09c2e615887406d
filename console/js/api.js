// The console's only way to the back end: the public HTTP API, with the signed-in person's token.
const KEY = "crm.session";

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
    this.fields = (body && body.fields) || {};
    this.retryAfter = retryAfter;
  }
}

export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch (err) {
    return null;
  }
}

export function saveSession(value) {
  if (value) sessionStorage.setItem(KEY, JSON.stringify(value));
  else sessionStorage.removeItem(KEY);
}

let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

export async function request(method, path, { body, raw, headers = {}, anonymous = false } = {}) {
  const current = session();
  const sent = { Accept: "application/json", ...headers };
  if (current && !anonymous) sent.Authorization = `Bearer ${current.token}`;
  let payload;
  if (raw !== undefined) payload = raw;
  else if (body !== undefined) {
    sent["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body: payload });
  } catch (err) {
    throw new ApiError(0, { error: "network", message: `network error: ${err.message}` });
  }
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    const error = new ApiError(response.status, typeof data === "object" ? data : { message: data },
                               Number(response.headers.get("Retry-After")) || null);
    // an expired or revoked token, or a user who left: back to sign-in (a failed login itself is not that)
    if (response.status === 401 && !anonymous) onUnauthorized(error);
    throw error;
  }
  return data;
}

export const get = (path, params) => request("GET", withQuery(path, params));
export const post = (path, body) => request("POST", path, { body: body ?? {} });
export const put = (path, body) => request("PUT", path, { body });
export const patch = (path, body) => request("PATCH", path, { body });

export function withQuery(path, params) {
  if (!params) return path;
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(name, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

// a file upload with progress events, which fetch does not give (PUT /v1/imports/{id}/file)
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", path);
    xhr.setRequestHeader("Authorization", `Bearer ${session().token}`);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (err) { data = { message: xhr.responseText }; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else {
        const error = new ApiError(xhr.status, data);
        if (xhr.status === 401) onUnauthorized(error);
        reject(error);
      }
    };
    xhr.onerror = () => reject(new ApiError(0, { error: "network", message: "network error during upload" }));
    xhr.send(file);
  });
}

// a CSV the API answers (rejected rows) saved through the browser, with the token the link itself cannot carry
export async function download(path, filename) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${session().token}` } });
  if (!response.ok) {
    const body = await response.json().catch(() => ({ message: `HTTP ${response.status}` }));
    if (response.status === 401) onUnauthorized(new ApiError(401, body));
    throw new ApiError(response.status, body);
  }
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// every page of a keyset-paginated listing, up to a bound so a huge scope cannot hang the page
export async function allPages(path, params, maxItems = 2000) {
  const items = [];
  let cursor;
  do {
    const page = await get(path, { ...params, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < maxItems);
  return { items, truncated: Boolean(cursor) };
}

// the browser's UTC offset as the work list wants it ("+08:00"), so "today" ends at the user's midnight
export function tzOffset() {
  const minutes = -new Date().getTimezoneOffset();
  const sign = minutes >= 0 ? "+" : "-";
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}
