// The administration page: server status, users (including deleting everything a user
// wrote), registration mode, invite links, and every room's hooks and webhooks.
//
// Every URL is relative (the app may be served under a path prefix). Everything that comes
// from the server is inserted as text, never parsed as HTML. The server enforces every rule;
// this page only makes the actions convenient.

import { qrSvg } from './qr.js';

const $ = (selector) => document.querySelector(selector);

/** Create an element: h('td', { class: 'x', 'data-label': 'Role' }, 'text', node). */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'hidden') el.hidden = true;
    else if (key === 'disabled') el.disabled = true;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// ---- API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, body) {
  const init = {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json' },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'Can’t reach the server. Check your connection and try again.');
  }
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch { data = null; }
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code || `http_${res.status}`,
      err.message || `Something went wrong (HTTP ${res.status}). Please try again.`);
  }
  return data;
}

const api = {
  me: () => call('GET', 'api/me'),
  status: () => call('GET', 'api/admin/status'),
  users: () => call('GET', 'api/admin/users'),
  act: (name, action) => call('POST', `api/admin/users/${encodeURIComponent(name)}`, { action }),
  purge: (name) => call('POST', `api/admin/users/${encodeURIComponent(name)}/purge`),
  registration: () => call('GET', 'api/admin/registration'),
  setRegistration: (mode) => call('PUT', 'api/admin/registration', { mode }),
  invites: () => call('GET', 'api/admin/invites'),
  createInvite: (maxUses, hours) => call('POST', 'api/admin/invites', { max_uses: maxUses, expires_in_hours: hours }),
  revokeInvite: (id) => call('DELETE', `api/admin/invites/${encodeURIComponent(id)}`),
  hooks: () => call('GET', 'api/admin/hooks'),
  removeHook: (id) => call('DELETE', `api/admin/hooks/${encodeURIComponent(id)}`),
  removeWebhook: (id) => call('DELETE', `api/admin/webhooks/${encodeURIComponent(id)}`),
};

// ---- Formatting -------------------------------------------------------------------------------

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const relative = typeof Intl.RelativeTimeFormat === 'function'
  ? new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' })
  : null;
const numberFormat = new Intl.NumberFormat();

function timeEl(iso, { ago = false } = {}) {
  if (!iso) return h('span', { class: 'muted' }, 'never');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', {}, iso);
  const full = dateFormat.format(d);
  return h('time', { datetime: iso, title: full }, ago ? relativeText(d) : full);
}

function relativeText(date) {
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  if (!relative) return dateFormat.format(date);
  const abs = Math.abs(seconds);
  if (abs < 60) return 'just now';
  if (abs < 3600) return relative.format(Math.round(seconds / 60), 'minute');
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), 'hour');
  if (abs < 86400 * 30) return relative.format(Math.round(seconds / 86400), 'day');
  return dateFormat.format(date);
}

function formatUptime(total) {
  const s = Math.max(0, Math.floor(total));
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const parts = [];
  if (days) parts.push(`${days} day${days === 1 ? '' : 's'}`);
  if (hours) parts.push(`${hours} hour${hours === 1 ? '' : 's'}`);
  if (!days && minutes) parts.push(`${minutes} minute${minutes === 1 ? '' : 's'}`);
  if (!parts.length) parts.push(`${s} second${s === 1 ? '' : 's'}`);
  return parts.join(', ');
}

function formatBytes(n) {
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let v = Number(n) || 0;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return i === 0 ? `${numberFormat.format(v)} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

const MODE_NAMES = { open: 'Open', invite: 'Invite only', closed: 'Closed' };
const STATE_NAMES = { active: 'Active', expired: 'Expired', used_up: 'Used up', revoked: 'Revoked' };

// ---- Messages -------------------------------------------------------------------------------------

const statusLine = $('#admin-status');
const errorLine = $('#admin-error');
let statusTimer = 0;

function announce(text) {
  errorLine.textContent = '';
  statusLine.textContent = '';
  clearTimeout(statusTimer);
  // A fresh text node each time, so repeated messages are announced again.
  requestAnimationFrame(() => {
    statusLine.textContent = text;
    statusLine.classList.add('is-visible');
    statusTimer = setTimeout(() => statusLine.classList.remove('is-visible'), 6000);
  });
}

function showError(err) {
  if (err instanceof ApiError && (err.status === 401 || (err.status === 403 && err.code === 'forbidden'))) {
    gate(err.status === 401 ? 'signed-out' : 'not-admin');
    return;
  }
  statusLine.textContent = '';
  errorLine.textContent = err instanceof Error ? err.message : String(err);
}

function clearError() {
  errorLine.textContent = '';
}

// ---- Confirmation dialog ------------------------------------------------------------------------

const dialog = $('#confirm');

/** Ask before a destructive action. Resolves to true when confirmed. */
function confirmAction(title, text, okLabel) {
  if (!dialog || typeof dialog.showModal !== 'function') {
    return Promise.resolve(window.confirm(`${title}\n\n${text}`));
  }
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = okLabel;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.returnValue = 'cancel';
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
    }, { once: true });
    dialog.showModal();
    $('#confirm-cancel').focus();
  });
}

// ---- Copying --------------------------------------------------------------------------------------

async function copyFrom(input, what) {
  const text = input.value;
  try {
    if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard');
    await navigator.clipboard.writeText(text);
    announce(`${what} copied to the clipboard.`);
  } catch {
    input.focus();
    input.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    announce(ok ? `${what} copied to the clipboard.` : `${what} selected: press Ctrl+C (or ⌘C) to copy it.`);
  }
}

// ---- Gate (signed out / not an administrator) -------------------------------------------------

const content = $('#admin-content');
const gateEl = $('#admin-gate');
const loading = $('#admin-loading');

function gate(kind) {
  loading.hidden = true;
  content.hidden = true;
  gateEl.hidden = false;
  const retry = $('#gate-retry');
  retry.hidden = kind !== 'offline';
  const [title, text] = {
    'signed-out': ['Please sign in', 'You need to sign in with an administrator account to use this page. Sign in on the chat page, then come back.'],
    'not-admin': ['Administrators only', 'Your account is not an administrator of this server, so this page is not available to you.'],
    offline: ['Can’t reach the server', 'The server did not answer. Check your connection and try again.'],
  }[kind];
  $('#gate-title').textContent = title;
  $('#gate-text').textContent = text;
  document.title = `${title} · Hearth`;
  $('#admin-main').focus();
}

// ---- Server status ----------------------------------------------------------------------------

let currentMode = null;

/** One node of several: its name, Redis, and whose presence it shows. */
function describeNode(c) {
  const redis = c.redis === 'ok' ? 'Redis answers' : 'Redis unreachable';
  const presence = c.presence === 'shared'
    ? 'who is online on every node'
    : 'who is online as last known, then on this node only';
  return `${c.node}: ${redis}; shows ${presence}`;
}

async function loadStatus({ announceDone = false } = {}) {
  const button = $('#status-refresh');
  button.disabled = true;
  try {
    const s = await api.status();
    $('#stat-version').textContent = s.version;
    $('#stat-uptime').textContent = formatUptime(s.uptime_seconds);
    $('#stat-connections').textContent = numberFormat.format(s.connections);
    $('#stat-online').textContent = numberFormat.format(s.online_users);
    $('#stat-users').textContent = numberFormat.format(s.users);
    $('#stat-rooms').textContent = numberFormat.format(s.rooms);
    $('#stat-messages').textContent = numberFormat.format(s.messages);
    $('#stat-database').textContent = formatBytes(s.database_bytes);
    $('#stat-registration').textContent = MODE_NAMES[s.registration] || s.registration;
    $('#stat-node-row').hidden = !s.cluster;
    if (s.cluster) $('#stat-node').textContent = describeNode(s.cluster);
    $('#status-updated').textContent = `Updated ${dateFormat.format(new Date())}.`;
    if (announceDone) announce('Server status refreshed.');
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

// ---- Users ----------------------------------------------------------------------------------------

let me = '';
let users = [];
const usersBody = $('#users-body');

function isMe(u) {
  return u.username.toLowerCase() === me.toLowerCase();
}

function renderUsers(focus) {
  usersBody.replaceChildren(...users.map((u) => {
    const self = isMe(u);
    const button = (slot, label, action, extra = {}) => h('button', {
      type: 'button',
      class: `btn btn-sm ${extra.danger ? 'btn-danger-outline' : 'btn-secondary'}`,
      'aria-label': extra.forUser ? `${label} for ${u.username}` : `${label} ${u.username}`,
      'data-user': u.username,
      'data-slot': slot,
      disabled: extra.disabled,
      title: extra.title,
      onclick: () => (action === 'purge' ? purgeUser(u, slot) : userAction(u, action, slot)),
    }, extra.text || label);
    const cantSelf = 'You cannot do this to your own account; ask another administrator.';
    return h('tr', { class: u.disabled ? 'is-disabled' : null },
      h('th', { scope: 'row', 'data-label': 'Username' },
        h('span', {},
          h('span', { class: 'username' }, u.username),
          self ? h('span', { class: 'you' }, ' (you)') : null)),
      h('td', { 'data-label': 'Role' },
        h('span', { class: `pill ${u.is_admin ? 'pill-accent' : ''}` }, u.is_admin ? 'Administrator' : 'Member')),
      h('td', { 'data-label': 'State' },
        h('span', { class: `pill ${u.disabled ? 'pill-danger' : 'pill-ok'}` }, u.disabled ? 'Disabled' : 'Active')),
      h('td', { 'data-label': 'Created' }, timeEl(u.created_at)),
      h('td', { 'data-label': 'Last seen' }, timeEl(u.last_seen, { ago: true })),
      h('td', { 'data-label': 'Actions', class: 'actions' },
        h('div', { class: 'action-row' },
          u.disabled
            ? button('state', 'Enable', 'enable')
            : button('state', 'Disable', 'disable', { danger: true, disabled: self, title: self ? cantSelf : null }),
          button('password', 'Reset password', 'reset_password', { danger: true, forUser: true }),
          u.is_admin
            ? button('role', 'Demote', 'demote', { disabled: self, title: self ? cantSelf : null })
            : button('role', 'Promote', 'promote'),
          button('signout', 'Sign out everywhere', 'sign_out', { danger: true, forUser: true }),
          button('purge', 'Delete all messages by', 'purge', { danger: true, text: 'Delete all messages' }))));
  }));
  if (focus) {
    const target = usersBody.querySelector(`button[data-user="${CSS.escape(focus.user)}"][data-slot="${focus.slot}"]`);
    if (target && !target.disabled) target.focus();
  }
}

async function loadUsers({ announceDone = false } = {}) {
  const button = $('#users-refresh');
  button.disabled = true;
  try {
    const data = await api.users();
    users = data.users || [];
    renderUsers();
    if (announceDone) announce(`User list refreshed: ${users.length} account${users.length === 1 ? '' : 's'}.`);
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

const CONFIRM = {
  disable: (n) => [`Disable ${n}?`, `${n} will be signed out everywhere at once and cannot sign in until enabled again.`, 'Disable account'],
  reset_password: (n) => [`Reset the password of ${n}?`, `Their current password stops working, they are signed out everywhere (bot tokens included), and you get a temporary password to give them.`, 'Reset password'],
  promote: (n) => [`Make ${n} an administrator?`, `${n} will be able to manage every account, registration and invite on this server.`, 'Make administrator'],
  demote: (n) => [`Remove administrator rights from ${n}?`, `${n} will no longer be able to use this page.`, 'Remove rights'],
  sign_out: (n) => [`Sign ${n} out everywhere?`, `Every session and bot token of ${n} is revoked and their open connections close at once. They can sign in again.`, 'Sign out everywhere'],
};

const DONE = {
  disable: (n) => `${n} is disabled and was signed out everywhere.`,
  enable: (n) => `${n} is enabled and can sign in again.`,
  reset_password: (n) => `The password of ${n} was reset and they were signed out everywhere. The temporary password is shown below the Users heading.`,
  promote: (n) => `${n} is now an administrator.`,
  demote: (n) => `${n} is no longer an administrator.`,
  sign_out: (n) => `${n} was signed out everywhere.`,
};

async function userAction(u, action, slot) {
  const ask = CONFIRM[action];
  if (ask && !(await confirmAction(...ask(u.username)))) return;
  clearError();
  const buttons = usersBody.querySelectorAll(`button[data-user="${CSS.escape(u.username)}"]`);
  for (const b of buttons) b.disabled = true;
  try {
    const data = await api.act(u.username, action);
    const i = users.findIndex((x) => x.id === data.user.id);
    if (i >= 0) users[i] = data.user;
    renderUsers({ user: data.user.username, slot });
    announce(DONE[action](data.user.username));
    if (data.temporary_password) showTemporaryPassword(data.user.username, data.temporary_password, isMe(data.user));
    if (isMe(data.user) && action === 'sign_out') {
      // We just signed ourselves out.
      gate('signed-out');
      return;
    }
    if (isMe(data.user) && action === 'reset_password') {
      // Signed out too, but the new password must stay visible.
      announce('Your password was reset and you were signed out everywhere. Copy the temporary password, then sign in again with it.');
      return;
    }
    loadStatus();
  } catch (err) {
    renderUsers({ user: u.username, slot });
    showError(err);
  }
}

/** Delete every message of `u` (each becomes a tombstone in the chat). */
async function purgeUser(u, slot) {
  const n = u.username;
  const ok = await confirmAction(`Delete every message by ${n}?`,
    `Everything ${n} has written, in every room and conversation, is deleted for everyone and reads “This message was deleted.” This cannot be undone. The account itself stays.`,
    'Delete all messages');
  if (!ok) return;
  clearError();
  const buttons = usersBody.querySelectorAll(`button[data-user="${CSS.escape(n)}"]`);
  for (const b of buttons) b.disabled = true;
  try {
    const data = await api.purge(n);
    const count = Number(data && data.deleted) || 0;
    const who = (data && typeof data.user === 'string' && data.user) || n;
    renderUsers({ user: n, slot });
    announce(`Deleted ${numberFormat.format(count)} message${count === 1 ? '' : 's'} by ${who}.`);
    loadStatus();
  } catch (err) {
    renderUsers({ user: n, slot });
    showError(err);
  }
}

/** `self`: the reset was the reader's own, so offer to go and change it (Settings → Password). */
function showTemporaryPassword(username, password, self) {
  $('#temp-password-user').textContent = username;
  $('#temp-password-self').hidden = !self;
  const input = $('#temp-password-value');
  input.value = password;
  $('#temp-password').hidden = false;
  $('#temp-password').scrollIntoView({ block: 'nearest' });
  input.focus();
  input.select();
}

function hideTemporaryPassword() {
  $('#temp-password-value').value = '';
  $('#temp-password').hidden = true;
  $('#users-heading').setAttribute('tabindex', '-1');
  $('#users-heading').focus();
}

// ---- Registration -------------------------------------------------------------------------------

const registrationForm = $('#registration-form');

function showMode(mode) {
  currentMode = mode;
  for (const radio of registrationForm.elements.mode) radio.checked = radio.value === mode;
  $('#stat-registration').textContent = MODE_NAMES[mode] || mode;
  const note = $('#invites-mode-note');
  if (mode === 'invite') {
    note.hidden = true;
    note.textContent = '';
  } else {
    note.hidden = false;
    note.textContent = mode === 'open'
      ? 'Registration is open, so invite links are not needed right now. Choose “Invite only” under Registration to require them.'
      : 'Registration is closed, so invite links do not work right now. Choose “Invite only” under Registration to let invited people in.';
  }
}

async function loadRegistration() {
  try {
    const data = await api.registration();
    showMode(data.mode);
  } catch (err) {
    showError(err);
  }
}

registrationForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const chosen = [...registrationForm.elements.mode].find((r) => r.checked);
  if (!chosen) {
    showError(new Error('Choose who can create an account.'));
    return;
  }
  const mode = chosen.value;
  if (mode === 'closed' && currentMode !== 'closed') {
    const ok = await confirmAction('Close registration?', 'Nobody will be able to create an account, not even with an invite link, until you open it again.', 'Close registration');
    if (!ok) return;
  }
  const button = $('#registration-save');
  button.disabled = true;
  clearError();
  try {
    const data = await api.setRegistration(mode);
    showMode(data.mode);
    announce(`Registration is now ${MODE_NAMES[data.mode].toLowerCase()}.`);
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
});

// ---- Invites --------------------------------------------------------------------------------------

const invitesBody = $('#invites-body');

function renderInvites(invites) {
  $('#invites-empty').hidden = invites.length > 0;
  $('#invites-wrap').hidden = invites.length === 0;
  invitesBody.replaceChildren(...invites.map((inv) => {
    const label = `invite created ${inv.created_at ? dateFormat.format(new Date(inv.created_at)) : ''}`.trim();
    return h('tr', { class: inv.state === 'active' ? null : 'is-inactive' },
      h('td', { 'data-label': 'Created' }, timeEl(inv.created_at)),
      h('td', { 'data-label': 'Created by' }, inv.created_by || h('span', { class: 'muted' }, 'command line')),
      h('td', { 'data-label': 'Expires' }, timeEl(inv.expires_at)),
      h('td', { 'data-label': 'Uses' }, `${inv.uses} of ${inv.max_uses}`),
      h('td', { 'data-label': 'State' },
        h('span', { class: `pill ${inv.state === 'active' ? 'pill-ok' : inv.state === 'revoked' ? 'pill-danger' : ''}` },
          STATE_NAMES[inv.state] || inv.state)),
      h('td', { 'data-label': 'Actions', class: 'actions' },
        inv.state === 'revoked'
          ? h('span', { class: 'muted' }, '–')
          : h('button', {
            type: 'button',
            class: 'btn btn-sm btn-danger-outline',
            'aria-label': `Revoke ${label}`,
            'data-invite': inv.id,
            onclick: () => revoke(inv),
          }, 'Revoke')));
  }));
}

async function loadInvites({ announceDone = false } = {}) {
  const button = $('#invites-refresh');
  button.disabled = true;
  try {
    const data = await api.invites();
    renderInvites(data.invites || []);
    if (announceDone) announce('Invite list refreshed.');
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

async function revoke(inv) {
  const ok = await confirmAction('Revoke this invite link?',
    `Nobody will be able to create an account with it any more (used ${inv.uses} of ${inv.max_uses} times). Accounts already created stay.`,
    'Revoke link');
  if (!ok) return;
  clearError();
  try {
    await api.revokeInvite(inv.id);
    await loadInvites();
    announce('The invite link was revoked.');
    $('#invites-heading').setAttribute('tabindex', '-1');
    $('#invites-heading').focus();
  } catch (err) {
    showError(err);
  }
}

const inviteForm = $('#invite-form');
const usesInput = $('#invite-uses');
usesInput.addEventListener('input', () => usesInput.removeAttribute('aria-invalid'));

inviteForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const uses = Number(usesInput.value);
  if (!Number.isInteger(uses) || uses < 1 || uses > 1000) {
    usesInput.setAttribute('aria-invalid', 'true');
    showError(new Error('Uses must be a whole number from 1 to 1000.'));
    usesInput.focus();
    return;
  }
  const hours = Number($('#invite-expiry').value);
  const button = $('#invite-create');
  button.disabled = true;
  clearError();
  try {
    const { invite } = await api.createInvite(uses, hours);
    const input = $('#new-invite-url');
    input.value = invite.url;
    const expires = dateFormat.format(new Date(invite.expires_at));
    $('#new-invite-text').textContent =
      `Copy it now: it is shown only this once. It can create ${invite.max_uses} account${invite.max_uses === 1 ? '' : 's'} and expires ${expires}.`;
    const qr = qrSvg(invite.qr, 'QR code for the invite link');
    $('#new-invite-qr').replaceChildren(...(qr ? [qr] : []));
    $('#new-invite').hidden = false;
    input.focus();
    input.select();
    announce('Invite link created. Copy it now: it is shown only once.');
    loadInvites();
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
});

// ---- Hooks and webhooks ---------------------------------------------------------------------------

/** A room as people see it: `#name`, or "a direct conversation". */
function roomName(room) {
  return String(room).startsWith('dm:') ? 'a direct conversation' : `#${room}`;
}

/** How a webhook is doing, in words. */
function webhookState(w) {
  if (w.failing_since) {
    const why = w.last_status ? `the receiver answered ${w.last_status}` : (w.last_error || 'no answer');
    return [h('span', { class: 'pill pill-danger' }, 'Failing'), ' since ', timeEl(w.failing_since, { ago: true }), `: ${why}`];
  }
  if (w.pending > 0) return [h('span', { class: 'pill' }, 'Sending'), ` ${numberFormat.format(w.pending)} waiting`];
  return [h('span', { class: 'pill pill-ok' }, 'OK'), w.last_attempt_ts ? [' last sent ', timeEl(w.last_attempt_ts, { ago: true })] : ''];
}

function renderHooks(data) {
  const hooks = Array.isArray(data.hooks) ? data.hooks : [];
  const webhooks = Array.isArray(data.webhooks) ? data.webhooks : [];
  $('#hooks-empty').hidden = hooks.length + webhooks.length > 0;
  $('#in-hooks-wrap').hidden = hooks.length === 0;
  $('#out-hooks-wrap').hidden = webhooks.length === 0;
  $('#in-hooks-body').replaceChildren(...hooks.map((k) => h('tr', {},
    h('td', { 'data-label': 'Name' }, k.name),
    h('td', { 'data-label': 'Room' }, roomName(k.room)),
    h('td', { 'data-label': 'Created by' }, k.created_by || h('span', { class: 'muted' }, 'a deleted account')),
    h('td', { 'data-label': 'Created' }, timeEl(k.created_ts)),
    h('td', { 'data-label': 'Last used' }, timeEl(k.last_used_ts, { ago: true })),
    h('td', { 'data-label': 'Actions', class: 'actions' },
      h('button', {
        type: 'button',
        class: 'btn btn-sm btn-danger-outline',
        'aria-label': `Remove hook ${k.name} of ${roomName(k.room)}`,
        onclick: () => removeHook(k),
      }, 'Remove')))));
  $('#out-hooks-body').replaceChildren(...webhooks.map((w) => h('tr', { class: w.failing_since ? 'is-inactive' : null },
    h('td', { 'data-label': 'URL', class: 'hook-url' }, w.url),
    h('td', { 'data-label': 'Room' }, roomName(w.room)),
    h('td', { 'data-label': 'Created by' }, w.created_by || h('span', { class: 'muted' }, 'a deleted account')),
    h('td', { 'data-label': 'Deliveries' }, `${numberFormat.format(w.delivered)} delivered`),
    h('td', { 'data-label': 'State' }, h('span', {}, webhookState(w))),
    h('td', { 'data-label': 'Actions', class: 'actions' },
      h('button', {
        type: 'button',
        class: 'btn btn-sm btn-danger-outline',
        'aria-label': `Remove webhook ${w.url} of ${roomName(w.room)}`,
        onclick: () => removeWebhook(w),
      }, 'Remove')))));
}

async function loadHooks({ announceDone = false } = {}) {
  const button = $('#hooks-refresh');
  button.disabled = true;
  try {
    renderHooks(await api.hooks());
    if (announceDone) announce('Hook list refreshed.');
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

async function removeHook(k) {
  const ok = await confirmAction(`Remove the hook ${k.name}?`,
    `Its URL stops working at once; what it posted to ${roomName(k.room)} stays, under its name.`,
    'Remove hook');
  if (!ok) return;
  await afterRemoval(() => api.removeHook(k.id), `The hook ${k.name} was removed.`);
}

async function removeWebhook(w) {
  const ok = await confirmAction('Remove this webhook?',
    `${w.url} receives nothing more from ${roomName(w.room)}, not even what is still waiting (${w.pending}).`,
    'Remove webhook');
  if (!ok) return;
  await afterRemoval(() => api.removeWebhook(w.id), 'The webhook was removed.');
}

async function afterRemoval(remove, said) {
  clearError();
  try {
    await remove();
  } catch (err) {
    // Gone already (removed from the room meanwhile): the refreshed list shows it.
    if (!(err instanceof ApiError && err.code === 'unknown_hook')) {
      showError(err);
      return;
    }
  }
  await loadHooks();
  announce(said);
  $('#hooks-heading').setAttribute('tabindex', '-1');
  $('#hooks-heading').focus();
}

// ---- Wiring ---------------------------------------------------------------------------------------

$('#status-refresh').addEventListener('click', () => loadStatus({ announceDone: true }));
$('#users-refresh').addEventListener('click', () => loadUsers({ announceDone: true }));
$('#invites-refresh').addEventListener('click', () => loadInvites({ announceDone: true }));
$('#hooks-refresh').addEventListener('click', () => loadHooks({ announceDone: true }));
$('#temp-password-copy').addEventListener('click', () => copyFrom($('#temp-password-value'), 'Temporary password'));
$('#temp-password-done').addEventListener('click', hideTemporaryPassword);
$('#new-invite-copy').addEventListener('click', () => copyFrom($('#new-invite-url'), 'Invite link'));
$('#new-invite-done').addEventListener('click', () => {
  $('#new-invite-url').value = '';
  $('#new-invite-qr').replaceChildren();
  $('#new-invite').hidden = true;
  $('#invite-create').focus();
});
$('#gate-retry').addEventListener('click', () => {
  gateEl.hidden = true;
  loading.hidden = false;
  start();
});

async function start() {
  let who;
  try {
    who = await api.me();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) gate('signed-out');
    else gate('offline');
    return;
  }
  if (!who.is_admin) {
    gate('not-admin');
    return;
  }
  me = who.user.username;
  $('#admin-me').textContent = me;
  loading.hidden = true;
  gateEl.hidden = true;
  content.hidden = false;
  document.title = 'Administration · Hearth';
  await Promise.all([loadStatus(), loadUsers(), loadRegistration(), loadInvites(), loadHooks()]);
}

start();
