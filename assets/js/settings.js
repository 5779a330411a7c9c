// The account's Settings dialog (account menu → Settings): Password (change it, optionally
// signing out the other devices), Devices and bots (the signed-in browsers and bot tokens, each
// revocable, and a new bot token shown once), Appearance (theme and density, applied at once
// through appearance.js) and Notifications (desktop notifications, sound, push on this device
// and the devices that receive pushes, see pushdevices.js).
//
// `./?settings=SECTION` (e.g. from the administration page's temporary-password notice) opens
// the dialog at that section once the chat has started.

import { api, ApiError } from './api.js';
import { $, $$, h, setText } from './dom.js';
import { dayLabel, formatFull, formatTime, parseTs } from './format.js';
import { notificationsSupported } from './notify.js';
import { PushDevices } from './pushdevices.js';
import { disablePush, enablePush, pushSupported } from './pushsub.js';
import { keepFocus, openDialog, wireDialog } from './dialogs.js';

const MIN_PASSWORD = 8;
const MAX_TOKEN_NAME = 64;

/** Each section's heading, and what takes focus when the dialog opens there. */
const SECTIONS = {
  password: { heading: '#settings-password-title', focus: '#password-current' },
  devices: { heading: '#devices-title', focus: '#devices-title' },
  appearance: { heading: '#settings-appearance-title', focus: '#settings-appearance-title' },
  notifications: { heading: '#notify-title', focus: '#notify-title' },
};

const errorText = (err, fallback) => (err instanceof ApiError ? err.message : fallback);

/** "30 seconds", "2 minutes": how long to wait after a 429. */
function waitText(seconds) {
  const s = Math.max(1, Math.ceil(Number(seconds) || 0));
  if (s < 90) return `${s} second${s === 1 ? '' : 's'}`;
  const m = Math.ceil(s / 60);
  return `${m} minute${m === 1 ? '' : 's'}`;
}

export class Settings {
  constructor(app) {
    this.app = app;
    this.dialog = $('#settings-dialog');
    wireDialog(this.dialog);
    this.devicesSeq = 0;
    this.pushDevices = new PushDevices(app, $('#notify-status'));

    $('#settings-open').addEventListener('click', () => this.open());
    $('#notify-open').addEventListener('click', () => this.open('notifications'));
    for (const link of $$('.settings-nav a', this.dialog)) {
      link.addEventListener('click', (e) => {
        // Not a hash change: the chat's hash names the open room.
        e.preventDefault();
        this.show(link.dataset.section);
      });
    }
    this.dialog.addEventListener('close', () => this.forget());

    $('#password-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.changePassword();
    });
    for (const id of ['#password-current', '#password-new', '#password-confirm']) {
      $(id).addEventListener('input', (e) => e.target.removeAttribute('aria-invalid'));
    }
    $('#token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.createToken();
    });
    $('#token-copy').addEventListener('click', () => this.copyToken());

    for (const radio of $$('input[name="theme"]', this.dialog)) {
      radio.addEventListener('change', () => this.setAppearance({ theme: radio.value }));
    }
    $('#density-compact').addEventListener('change', (e) => this.setAppearance({ compact: e.target.checked }));

    $('#notify-desktop').addEventListener('change', (e) => this.toggleDesktop(e.target));
    $('#notify-push').addEventListener('change', (e) => this.togglePush(e.target));
    $('#notify-sound').addEventListener('change', (e) => {
      this.app.notifier.setSound(e.target.checked);
      setText($('#notify-status'), e.target.checked ? 'A short sound plays for direct messages and mentions.' : 'Sound is off.');
    });
  }

  /** Open the dialog, at `section` (see SECTIONS) or at its top. */
  open(section = '') {
    const at = SECTIONS[section];
    this.fillAppearance();
    this.fillNotifications();
    if (!this.dialog.open) {
      openDialog(this.dialog, $(at ? at.focus : '#settings-title'));
      this.loadDevices();
    } else if (at) {
      $(at.focus).focus();
    }
    if (at) $(at.heading).scrollIntoView({ block: 'start' });
  }

  /** Jump to a section inside the open dialog. */
  show(section) {
    const at = SECTIONS[section];
    if (!at) return;
    const heading = $(at.heading);
    heading.scrollIntoView({ block: 'start' });
    heading.focus({ preventScroll: true });
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  /** Called once the chat has started: `?settings=SECTION` opens that section (once). */
  openFromUrl() {
    const url = new URL(window.location.href);
    const section = url.searchParams.get('settings');
    if (section == null) return;
    url.searchParams.delete('settings');
    window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
    this.open(SECTIONS[section] ? section : '');
  }

  /** Nothing secret outlives the dialog: typed passwords and a new token are cleared. */
  forget() {
    for (const id of ['#password-current', '#password-new', '#password-confirm']) {
      $(id).value = '';
      $(id).removeAttribute('aria-invalid');
    }
    setText($('#password-error'), '');
    setText($('#password-status'), '');
    setText($('#token-error'), '');
    this.hideToken();
  }

  // ---- password -------------------------------------------------------------------------

  /** The first problem with the form as typed, before asking the server: [field, sentence]. */
  checkPassword(current, next, confirm) {
    if (!current) return ['#password-current', 'Enter your current password.'];
    if (!next) return ['#password-new', 'Enter a new password.'];
    if (new TextEncoder().encode(next).length < MIN_PASSWORD) {
      return ['#password-new', `The new password is too short: use at least ${MIN_PASSWORD} characters.`];
    }
    if (next !== confirm) return ['#password-confirm', 'The new passwords do not match. Type the same password in both fields.'];
    return null;
  }

  async changePassword() {
    const current = $('#password-current').value;
    const next = $('#password-new').value;
    const confirm = $('#password-confirm').value;
    const others = $('#password-others').checked;
    setText($('#password-status'), '');
    const problem = this.checkPassword(current, next, confirm);
    if (problem) {
      this.passwordError(...problem);
      return;
    }
    this.passwordError(null, '');
    const btn = $('#password-submit');
    const hadFocus = document.activeElement === btn;
    btn.disabled = true;
    try {
      await api.changePassword(current, next, others);
      for (const id of ['#password-current', '#password-new', '#password-confirm']) $(id).value = '';
      setText($('#password-status'), others
        ? 'Your password was changed. Your other devices were signed out and your bot tokens revoked.'
        : 'Your password was changed. Your bot tokens were revoked.');
      this.loadDevices();
    } catch (err) {
      if (err instanceof ApiError && err.isUnauthorized && err.code !== 'invalid_credentials') {
        this.app.sessionEnded();
        return;
      }
      this.passwordError(...passwordFailure(err));
    } finally {
      btn.disabled = false;
      // Disabled while saving, the button let go of the focus: it takes it back (the status
      // line beside it says what happened).
      keepFocus(btn, hadFocus);
    }
  }

  /** Show `text` in the form's alert, mark `field` invalid and focus it (null: none). */
  passwordError(field, text) {
    setText($('#password-error'), text);
    if (!field) return;
    const input = $(field);
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    input.select();
  }

  // ---- devices and bot tokens ------------------------------------------------------------

  /** Fetch the list again; `said` stays in the status line (the outcome of a revoke). */
  async loadDevices(said = '') {
    const seq = ++this.devicesSeq;
    setText($('#devices-status'), said || 'Loading signed-in devices…');
    setText($('#devices-error'), '');
    try {
      const data = await api.sessions();
      if (seq !== this.devicesSeq) return;
      const sessions = data && Array.isArray(data.sessions) ? data.sessions : [];
      this.renderDevices(sessions, said);
    } catch (err) {
      if (seq !== this.devicesSeq) return;
      if (err instanceof ApiError && err.isUnauthorized) {
        this.app.sessionEnded();
        return;
      }
      setText($('#devices-status'), said);
      setText($('#devices-error'), errorText(err, 'Could not load the signed-in devices.'));
    }
  }

  renderDevices(sessions, said) {
    // This device first; otherwise the server's order (newest first).
    const list = sessions.filter((s) => s.current).concat(sessions.filter((s) => !s.current));
    const browsers = list.filter((s) => s.kind !== 'bot').length;
    const bots = list.length - browsers;
    const plural = (n, one) => `${n} ${one}${n === 1 ? '' : 's'}`;
    const count = `${plural(browsers, 'browser session')} and ${plural(bots, 'bot token')}.`;
    setText($('#devices-status'), said ? `${said} ${count}` : count);
    const names = revokeNames(list);
    $('#devices-list').replaceChildren(...list.map((s, i) => this.deviceRow(s, names[i])));
  }

  deviceRow(s, revokeName) {
    const bot = s.kind === 'bot';
    const metaId = `device-meta-${s.id}`;
    return h('li', { class: `device-item${s.current ? ' is-current' : ''}`, dataset: { session: s.id } },
      h('div', { class: 'device-main' },
        h('p', { class: 'device-name' },
          sessionLabel(s),
          s.current ? h('span', { class: 'device-tag' }, ' (this device)') : null),
        h('p', { class: 'device-meta', id: metaId },
          h('span', null, bot ? 'Created ' : 'Signed in ', when(s.created_at)),
          h('span', null, 'Last used ', when(s.last_seen)))),
      h('div', { class: 'device-actions' },
        s.current
          // Signing this page out goes through the same path as the header's Sign out, which
          // stops the socket first so its 4001 close is not reported as an ended session.
          ? h('button', { type: 'button', class: 'btn btn-secondary btn-sm', 'aria-describedby': metaId, onclick: () => this.app.signOut() }, 'Sign out this device')
          : h('button', {
            type: 'button',
            class: 'btn btn-danger btn-sm',
            'aria-label': revokeName,
            'aria-describedby': metaId,
            onclick: (e) => this.revokeDevice(s, e.currentTarget),
          }, 'Revoke')));
  }

  async revokeDevice(s, btn) {
    const label = sessionLabel(s);
    btn.disabled = true;
    setText($('#devices-error'), '');
    let said = `${label} revoked.`;
    try {
      await api.revokeSession(s.id);
    } catch (err) {
      if (err instanceof ApiError && err.isUnauthorized) {
        this.app.sessionEnded();
        return;
      }
      if (!(err instanceof ApiError && err.code === 'unknown_session')) {
        btn.disabled = false;
        setText($('#devices-error'), errorText(err, `Could not revoke ${label}.`));
        return;
      }
      // Gone already (revoked elsewhere or expired): the refreshed list shows that.
      said = `${label} had already ended.`;
    }
    // The row and its button go away: keep focus in the dialog, where the status is read out.
    $('#devices-title').focus();
    await this.loadDevices(said);
  }

  async createToken() {
    const input = $('#token-name');
    const name = input.value.trim();
    const errEl = $('#token-error');
    setText(errEl, '');
    input.removeAttribute('aria-invalid');
    if (!name || name.length > MAX_TOKEN_NAME) {
      setText(errEl, `Give the token a name of 1 to ${MAX_TOKEN_NAME} characters, e.g. “backup bot”.`);
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    const btn = $('#token-form').querySelector('button[type="submit"]');
    btn.disabled = true;
    try {
      const data = await api.createToken(name);
      input.value = '';
      this.showToken(data && data.name ? data.name : name, data && data.token ? String(data.token) : '');
      this.loadDevices();
    } catch (err) {
      if (err instanceof ApiError && err.isUnauthorized) {
        this.app.sessionEnded();
        return;
      }
      setText(errEl, err instanceof ApiError && err.code === 'too_many_tokens'
        ? 'You have as many bot tokens as this server allows. Revoke one you no longer use, then try again.'
        : errorText(err, 'Could not create the token.'));
      input.focus();
    } finally {
      btn.disabled = false;
    }
  }

  showToken(name, token) {
    setText($('#token-reveal-name'), `“${name}”`);
    const value = $('#token-value');
    value.value = token;
    setText($('#token-copy-status'), '');
    $('#token-reveal').hidden = false;
    value.focus();
    value.select();
  }

  hideToken() {
    $('#token-value').value = '';
    $('#token-reveal').hidden = true;
  }

  async copyToken() {
    const input = $('#token-value');
    const status = $('#token-copy-status');
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard');
      await navigator.clipboard.writeText(input.value);
      setText(status, 'Token copied to the clipboard.');
    } catch {
      input.focus();
      input.select();
      let ok = false;
      try { ok = document.execCommand('copy'); } catch { ok = false; }
      setText(status, ok ? 'Token copied to the clipboard.' : 'Token selected: press Ctrl+C (or ⌘C) to copy it.');
    }
  }

  // ---- appearance ---------------------------------------------------------------------------

  fillAppearance() {
    const prefs = appearance().get();
    for (const radio of $$('input[name="theme"]', this.dialog)) radio.checked = radio.value === prefs.theme;
    $('#density-compact').checked = prefs.compact;
  }

  setAppearance(change) {
    const prefs = appearance().save(change);
    this.fillAppearance();
    if ('theme' in change) {
      this.app.announce(prefs.theme === 'system' ? 'Theme: follows this device.' : `Theme: ${prefs.theme}.`);
    } else {
      this.app.announce(prefs.compact ? 'Compact density on.' : 'Compact density off.');
    }
  }

  // ---- notifications ------------------------------------------------------------------------

  fillNotifications() {
    const n = this.app.notifier;
    const desktop = $('#notify-desktop');
    desktop.checked = n.desktop;
    desktop.disabled = !notificationsSupported();
    $('#notify-sound').checked = n.sound;
    setText($('#notify-status'), !notificationsSupported()
      ? 'This browser cannot show desktop notifications.'
      : n.permission === 'denied' ? 'Notifications are blocked for this site in the browser’s settings.' : '');
    const push = $('#notify-push');
    push.disabled = !pushSupported();
    push.checked = false;
    // On when this browser has a subscription that the server keeps for this account.
    this.pushDevices.load().then((on) => { push.checked = on; });
  }

  async togglePush(box) {
    const want = box.checked;
    box.disabled = true;
    try {
      if (want) {
        await enablePush();
        setText($('#notify-status'), 'Push notifications are on for this device.');
      } else {
        await disablePush();
        setText($('#notify-status'), 'Push notifications are off for this device.');
      }
      await this.pushDevices.load();
    } catch (err) {
      box.checked = !want;
      setText($('#notify-status'), err && err.message ? err.message : 'That did not work.');
    } finally {
      box.disabled = false;
    }
  }

  async toggleDesktop(box) {
    const text = await this.app.notifier.setDesktop(box.checked);
    box.checked = this.app.notifier.desktop;
    setText($('#notify-status'), text);
  }
}

/** appearance.js (loaded from <head>), or a stand-in that only lasts as long as the page. */
function appearance() {
  if (window.HearthAppearance) return window.HearthAppearance;
  let prefs = { theme: 'system', compact: false };
  return {
    get: () => prefs,
    save: (change) => {
      prefs = { ...prefs, ...change };
      document.documentElement.setAttribute('data-theme', prefs.theme);
      document.documentElement.classList.toggle('density-compact', prefs.compact);
      return prefs;
    },
  };
}

/** What went wrong with a password change: [field to fix, sentence]. */
function passwordFailure(err) {
  if (!(err instanceof ApiError)) return [null, 'Could not change the password.'];
  switch (err.code) {
    case 'invalid_credentials':
      return ['#password-current', 'Your current password is not right. Check it and try again.'];
    case 'weak_password':
      return ['#password-new', `The new password is too short: use at least ${MIN_PASSWORD} characters.`];
    case 'password_too_long':
      return ['#password-new', 'The new password is too long: use at most 1024 bytes.'];
    case 'too_many_attempts':
    case 'busy':
      return [null, err.retryAfter != null
        ? `Too many attempts. Please wait ${waitText(err.retryAfter)} before trying again.`
        : 'Too many attempts. Please wait a few minutes before trying again.'];
    default:
      return [null, err.message];
  }
}

/** "Today at 9:41", "Monday, November 23 at 18:05" (the full date and time as a tooltip). */
function when(ts) {
  if (!ts) return null;
  const d = parseTs(ts);
  return h('time', { datetime: d.toISOString(), title: formatFull(d) }, `${dayLabel(d)} at ${formatTime(d)}`);
}

/** What a session is called in its row: never markup, the bot's name is the user's text. */
function sessionLabel(s) {
  return s.kind === 'bot' ? `Bot token: ${s.name || 'unnamed'}` : 'Browser session';
}

/**
 * The accessible name of each row's Revoke button. Two browser sessions (or two tokens with
 * one name) would share "Revoke Browser session", so repeats get their start time and, if even
 * that repeats, a number: every button must say which row it ends.
 */
function revokeNames(sessions) {
  const base = sessions.map((s) => `Revoke ${sessionLabel(s)}`);
  const withTime = base.map((name, i) => (base.filter((n) => n === name).length > 1
    ? `${name}, signed in ${formatFull(parseTs(sessions[i].created_at))}`
    : name));
  const seen = new Map();
  return withTime.map((name) => {
    const total = withTime.filter((n) => n === name).length;
    if (total === 1) return name;
    const k = (seen.get(name) || 0) + 1;
    seen.set(name, k);
    return `${name} (${k} of ${total})`;
  });
}
