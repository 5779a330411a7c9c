// HTTP API client. Same-origin, cookie-authenticated JSON.

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0 when the server could not be reached)
   * @param {string} code   machine-readable code from the server, e.g. "username_taken"
   * @param {string} message human sentence, suitable to show as is
   * @param {number|null} retryAfter seconds, from the Retry-After header
   */
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  get isNetwork() { return this.status === 0; }
  get isUnauthorized() { return this.status === 401; }
}

const FALLBACK_MESSAGES = {
  400: 'The server did not understand that request.',
  401: 'Please sign in to continue.',
  403: 'That is not allowed.',
  404: 'That could not be found.',
  405: 'The server does not support that yet.',
  409: 'That conflicts with something that already exists.',
  413: 'That is too large.',
  415: 'The server did not accept that request.',
  429: 'Too many attempts. Please wait a moment and try again.',
};

const timedOut = () => new ApiError(0, 'timeout', 'The server took too long to answer. Please try again.');

function parseRetryAfter(res) {
  const value = res.headers.get('Retry-After');
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** `timeoutMs` gives up on a request that has not been answered by then (no default). */
async function request(method, path, body, { timeoutMs } = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json' },
  };
  if (timeoutMs) init.signal = AbortSignal.timeout(timeoutMs);
  if (method !== 'GET') init.headers['Content-Type'] = 'application/json';
  if (body !== undefined) init.body = JSON.stringify(body);

  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e && e.name === 'TimeoutError') throw timedOut();
    throw new ApiError(0, 'network', 'Can’t reach the server. Check your connection and try again.');
  }

  let data = null;
  if (res.status !== 204) {
    const text = await res.text().catch(() => {
      // A body cut off by the timeout is no answer; one that cannot be read is none.
      if (init.signal && init.signal.aborted) throw timedOut();
      return '';
    });
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
  }

  if (!res.ok) {
    const err = (data && data.error) || {};
    const message = typeof err.message === 'string' && err.message
      ? err.message
      : FALLBACK_MESSAGES[res.status] || `Something went wrong (HTTP ${res.status}). Please try again.`;
    throw new ApiError(res.status, err.code || `http_${res.status}`, message, parseRetryAfter(res));
  }
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v != null && v !== '') q.set(k, String(v));
  const text = q.toString();
  return text ? `?${text}` : '';
}

const room = (name) => `api/rooms/${encodeURIComponent(name)}`;

// Every path is relative to the page, so the UI works at `/` and under a path prefix.
export const api = {
  me: () => request('GET', 'api/me'),
  login: (username, password) => request('POST', 'api/login', { username, password }),
  /** `extra` adds fields to the body (e.g. an invitation code). */
  register: (username, password, extra = {}) =>
    request('POST', 'api/register', { ...extra, username, password }),
  logout: () => request('POST', 'api/logout'),
  /** The signed-in browsers and bot tokens of this account, newest first. */
  sessions: () => request('GET', 'api/sessions'),
  /** End one of them (its sockets close with 4001); `id` is the listing id, not the token. */
  revokeSession: (id) => request('DELETE', `api/sessions/${encodeURIComponent(id)}`),
  /** 204; `signOutOthers` also ends every other browser session (bot tokens always end). */
  changePassword: (current, next, signOutOthers) => request('POST', 'api/password',
    { current_password: current, new_password: next, sign_out_others: signOutOthers }),
  /** `{token, name}`: a bearer token for a bot, shown this once. */
  createToken: (name) => request('POST', 'api/tokens', { name }),
  /** `{user}`: the profile after the change; fields left out stay as they are. */
  updateProfile: (body) => request('PATCH', 'api/me', body),
  removeAvatar: () => request('DELETE', 'api/me/avatar'),
  /** `{public_key}`: the server's VAPID key, for `pushManager.subscribe`. */
  pushKey: () => request('GET', 'api/push/key'),
  /** Keep this browser's `PushSubscription` (its `toJSON()`). */
  subscribePush: (subscription) => request('POST', 'api/push/subscriptions', subscription),
  unsubscribePush: (endpoint) => request('DELETE', 'api/push/subscriptions', { endpoint }),
  /** `{subscriptions}`: this account's devices that receive pushes, with their settings. */
  pushDevices: () => request('GET', 'api/push/subscriptions'),
  /** The device after the change: `{level?, quiet?, utc_offset?}` (left out: unchanged). */
  updatePush: (endpoint, change) => request('PATCH', 'api/push/subscriptions', { endpoint, ...change }),
  removePreview: (id) => request('DELETE', `api/messages/${Number(id)}/preview`),
  /** `{events, head}`: the message, edit, deletion and reaction frames after position `after`
   * (a page not answered in 20 s fails, so a gap being filled tries again). */
  events: (after, limit) => request('GET', `api/events${query({ after, limit })}`, undefined,
    { timeoutMs: 20000 }),
  rooms: () => request('GET', 'api/rooms'),
  directory: () => request('GET', 'api/directory'),
  createRoom: (body) => request('POST', 'api/rooms', body),
  room: (name) => request('GET', room(name)),
  updateRoom: (name, body) => request('PATCH', room(name), body),
  join: (name) => request('POST', `${room(name)}/join`),
  leave: (name) => request('POST', `${room(name)}/leave`),
  invite: (name, username) => request('POST', `${room(name)}/members`, { username }),
  read: (name, id) => request('POST', `${room(name)}/read`, { id }),
  setNotify: (name, level) => request('PUT', `${room(name)}/notify`, { level }),
  /** `{hooks}`: the room's incoming hooks (without their secret URLs). */
  hooks: (name) => request('GET', `${room(name)}/hooks`),
  /** `{hook}` with its secret `url`, shown this once. */
  createHook: (name, hookName) => request('POST', `${room(name)}/hooks`, { name: hookName }),
  deleteHook: (name, id) => request('DELETE', `${room(name)}/hooks/${encodeURIComponent(id)}`),
  /** `{webhooks}`: the room's outgoing webhooks with their delivery state. */
  webhooks: (name) => request('GET', `${room(name)}/webhooks`),
  /** `{webhook}` with its signing `secret`, shown this once. */
  createWebhook: (name, url) => request('POST', `${room(name)}/webhooks`, { url }),
  deleteWebhook: (name, id) => request('DELETE', `${room(name)}/webhooks/${Number(id)}`),
  createDm: (users) => request('POST', 'api/dms', { users }),
  /** params: { q, limit }: people whose name starts with q. */
  users: (params) => request('GET', `api/users${query(params)}`),
  /** params: { limit, before } or { limit, after } or { limit, around } */
  messages: (name, params = {}) => request('GET', `${room(name)}/messages${query(params)}`),
  /** params: { q, room, user, limit, sort, before, offset } */
  search: (params) => request('GET', `api/search${query(params)}`),
  /** What the "Invite people" dialog offers: the site's address, registration mode, rights. */
  share: () => request('GET', 'api/share'),
  /** `{invite}`: a new invite link for `maxUses` sign-ups within `hours`. */
  createInvite: (maxUses, hours) =>
    request('POST', 'api/invites', { max_uses: maxUses, expires_in_hours: hours }),
};
