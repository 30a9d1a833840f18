// Calls to docgate's API with the signed-in person's token. Errors are the API's problem+json
// (RFC 9457) turned into ApiError, so the console can show the server's own explanation.

import { getToken } from "./auth.js";

export class ApiError extends Error {
  constructor(status, title, detail, extra = {}) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
    this.detail = detail || title || `The request failed with HTTP ${status}.`;
    this.extra = extra;
  }
}

async function problemFrom(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error && body.error.message) {  // OpenAI-shaped errors
      return new ApiError(response.status, body.error.type, body.error.message, body.error);
    }
    return new ApiError(response.status, body.title, body.detail, body);
  } catch {
    return new ApiError(response.status, response.statusText, text.slice(0, 300));
  }
}

async function authorised(headers = {}) {
  const token = await getToken();
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

// JSON in, JSON out; throws ApiError with the problem's detail.
export async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  const sent = await authorised(headers);
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && !(body instanceof FormData)) {
    payload = JSON.stringify(body);
    sent["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, { method, body: payload, headers: sent, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "Network error", `docgate could not be reached (${error.message}).`);
  }
  if (!response.ok) throw await problemFrom(response);
  if (response.status === 204) return null;
  return response.json();
}

// A binary resource (a page image) as an object URL, fetched with the token.
export async function objectUrl(path) {
  const response = await fetch(path, { headers: await authorised() });
  if (!response.ok) throw await problemFrom(response);
  return URL.createObjectURL(await response.blob());
}

// Uploads one file as multipart/form-data; reports upload progress (XHR: fetch has none).
export async function upload(file, acl, onProgress) {
  const headers = await authorised();
  const form = new FormData();
  form.append("file", file, file.name);
  if (acl) form.append("acl", acl);
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/api/documents");
    for (const [name, value] of Object.entries(headers)) request.setRequestHeader(name, value);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { body = null; }
      if (request.status >= 200 && request.status < 300) {
        onProgress(1);
        resolve(body);
      } else {
        const detail = body && (body.detail || body.title) || request.statusText;
        reject(new ApiError(request.status, body && body.title, detail, body || {}));
      }
    });
    request.addEventListener("error", () => reject(new ApiError(0, "Network error", "the upload was interrupted")));
    request.send(form);
  });
}

// POST /api/chat with stream: true. Calls onDelta(text) for each piece; resolves with the
// final answer (the `done` event); rejects with ApiError on a problem before or during it.
export async function streamChat(messages, onDelta, signal) {
  const headers = await authorised({ "Content-Type": "application/json", Accept: "text/event-stream" });
  const response = await fetch("/api/chat", {
    method: "POST", headers, signal, body: JSON.stringify({ messages, stream: true }),
  });
  if (!response.ok) throw await problemFrom(response);
  const meta = {
    model: response.headers.get("x-docgate-model"),
    tier: response.headers.get("x-docgate-tier"),
    region: response.headers.get("x-docgate-region"),
    cache: response.headers.get("x-docgate-cache"),
  };
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let done = null;
  for (;;) {
    const { value, done: finished } = await reader.read();
    if (finished) break;
    buffer += value;
    let boundary;
    while ((boundary = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      const event = parseEvent(block);
      if (event.name === "delta") onDelta(event.data.text);
      else if (event.name === "done") done = event.data;
      else if (event.name === "error") {
        throw new ApiError(event.data.status, event.data.title, event.data.detail, event.data);
      }
    }
  }
  if (!done) throw new ApiError(0, "Interrupted", "the answer stopped before it was complete");
  return { ...done, meta };
}

function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  return { name, data: data.length ? JSON.parse(data.join("\n")) : null };
}
