// Log-in, the socket.io connection and acknowledged requests, shared by the consoles,
// the administrator's pages and the kiosk.
//
// The socket.io client is the UMD build at /static/vendor/socket.io.min.js, loaded by a
// classic <script> before the page's modules, so it is `window.io` here.

const TOKEN_KEY = "etapalvelu.session";

export class RequestError extends Error {
  constructor(code, message, reason = null) {
    super(message || code);
    this.code = code;
    this.reason = reason; // a stable detail such as "queue_empty", for a translated text
  }
}

/** POST /api/login → {token, expires_at, user}; kept in sessionStorage so a reload stays in. */
export async function login(username, password) {
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  let body = {};
  try {
    body = await response.json();
  } catch {
    /* an empty or non-JSON error body */
  }
  if (!response.ok) {
    const error = body.error || {};
    throw new RequestError(error.code || String(response.status), error.message || "");
  }
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify(body));
  return body;
}

export function savedSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null");
    if (!session || !session.token) return null;
    if (session.expires_at && Date.parse(session.expires_at) < Date.now()) return null;
    return session;
  } catch {
    return null;
  }
}

export function forgetSession() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** GET/POST the REST API with the session's bearer token; JSON in, JSON out. */
export async function api(path, { method = "GET", body, raw = false } = {}) {
  const session = savedSession();
  const headers = {};
  if (session) headers.authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (raw) {
    if (!response.ok) throw new RequestError(String(response.status), response.statusText);
    return response;
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new RequestError(error.code || String(response.status), error.message || "");
  }
  return data;
}

/** A socket.io connection authenticated with `auth` ({token} or {endpoint_id, credential}). */
export function connect(auth) {
  // WebSocket only: one connection that stays on one signaling process, so a load balancer
  // needs no sticky sessions (long-polling would spread one session's requests over processes).
  return window.io({ auth, transports: ["websocket"], reconnectionDelayMax: 4000 });
}

/** Emit `event` and wait for its ack; `{ok:false}` becomes a RequestError. */
export function request(socket, event, payload = {}, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    socket.timeout(timeoutMs).emit(event, payload, (err, ack) => {
      if (err) {
        reject(new RequestError("timeout", `${event}: no answer`));
      } else if (!ack || ack.ok !== true) {
        const error = (ack && ack.error) || {};
        reject(new RequestError(error.code || "error", error.message || event, error.reason));
      } else {
        resolve(ack);
      }
    });
  });
}
