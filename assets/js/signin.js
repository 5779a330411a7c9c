// The sign-in / create-account view. It asks the server who may register (open, invite-only
// or closed) and, when the page was opened from an invite link (`?invite=CODE`), sends the code
// along with the new account. The one-time setup link the server logs while it has no
// administrator (`?setup=CODE`) works the same way: the account created with it administers
// the server.

import { api, ApiError } from './api.js';
import { $, setText } from './dom.js';
import { welcomeKey } from './onboarding.js';

export class SignInView {
  /**
   * @param {object} o
   * @param {(user: {id:number, username:string}) => void} o.onSignedIn
   */
  constructor(o) {
    this.o = o;
    this.root = $('#signin-view');
    this.form = $('#signin-form');
    this.username = $('#signin-username');
    this.password = $('#signin-password');
    this.error = $('#signin-error');
    this.submitBtn = $('#signin-submit');
    this.createBtn = $('#signin-create');
    this.divider = $('#signin-divider');
    this.note = $('#signin-note');
    this.heading = $('#signin-view .auth-brand h1');
    this.tagline = $('#signin-view .auth-tagline');
    this.plain = {
      heading: this.heading.textContent,
      tagline: this.tagline.textContent,
      divider: this.divider.textContent,
    };
    this.inviteFirst = false; // opened from an invite or setup link: "Create account" leads
    this.busy = false;
    this.invite = codeFromUrl('invite');
    this.setup = codeFromUrl('setup');
    this.mode = 'open';
    // Say what a link was for straight away, not only once the server has answered.
    if (this.invite || this.setup) this.applyMode(this.mode);
    this.loadMode();

    // Enter submits the leading action: "Sign in", or "Create account" on an invite link.
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (this.inviteFirst) this.run('register', this.createBtn);
      else this.run('login', this.submitBtn);
    });
    this.createBtn.addEventListener('click', () => {
      if (!this.inviteFirst) this.run('register', this.createBtn);
    });
    this.submitBtn.addEventListener('click', () => {
      if (this.inviteFirst) this.run('login', this.submitBtn);
    });
    for (const input of [this.username, this.password]) {
      input.addEventListener('input', () => input.removeAttribute('aria-invalid'));
    }
  }

  /** Ask the server who may create an account, then show or hide "Create account". */
  async loadMode() {
    try {
      const res = await fetch('api/registration', {
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { Accept: 'application/json' },
      });
      if (!res.ok) return;
      const data = await res.json();
      if (['open', 'invite', 'closed'].includes(data.mode)) this.applyMode(data.mode);
    } catch {
      // Unknown: keep offering "Create account"; the server still decides.
    }
  }

  applyMode(mode) {
    this.mode = mode;
    const canCreate = mode === 'open' || (mode === 'invite' && Boolean(this.invite));
    if (!canCreate && document.activeElement === this.createBtn) this.submitBtn.focus();
    this.createBtn.hidden = !canCreate;
    this.divider.hidden = !canCreate;
    this.setInviteFirst(canCreate && Boolean(this.invite || this.setup));
    const strong = (text) => {
      const el = document.createElement('strong');
      el.textContent = text;
      return el;
    };
    if (mode === 'closed') {
      this.note.replaceChildren(
        strong('Registration is closed on this server.'),
        ' Ask an administrator if you need an account.',
      );
    } else if (mode === 'invite' && !this.invite) {
      this.note.replaceChildren(
        strong('New accounts need an invite link.'),
        ' Ask an administrator of this server for one, then open it to create your account.',
      );
    } else if (this.setup) {
      // Whether the code is still good is the server's call; a spent one makes an ordinary account.
      this.note.replaceChildren(
        strong('Create the administrator account:'),
        ' choose a username and a password of at least 8 characters, then select ',
        strong('Create account'),
        '.',
      );
    } else if (this.invite) {
      this.note.replaceChildren(
        strong('You have been invited!'),
        ' Choose a username and a password of at least 8 characters, then select ',
        strong('Create account'),
        '.',
      );
    } else {
      this.note.replaceChildren(
        'New here? Choose a username and a password of at least 8 characters, then select ',
        strong('Create account'),
        '.',
      );
    }
  }

  /**
   * Opened from an invite (or the setup) link, the page is a welcome: the heading says so,
   * "Create account" comes first as the primary action (Enter creates the account), and
   * "Sign in" follows for people who already have one.
   */
  setInviteFirst(on) {
    if (on === this.inviteFirst) return;
    this.inviteFirst = on;
    const actions = this.submitBtn.parentElement;
    if (on) {
      actions.replaceChildren(this.createBtn, this.divider, this.submitBtn);
      this.divider.replaceChildren(Object.assign(document.createElement('span'), { textContent: 'Already have an account?' }));
      this.divider.removeAttribute('aria-hidden');
      this.divider.classList.add('auth-divider-text');
      const site = siteName();
      setText(this.heading, this.setup ? 'Set up Hearth' : 'You’re invited to Hearth');
      setText(this.tagline, this.setup
        ? `Create the first account on ${site}: it will run this server.`
        : `Create an account on ${site} to join the conversation.`);
    } else {
      actions.replaceChildren(this.submitBtn, this.divider, this.createBtn);
      this.divider.replaceChildren(Object.assign(document.createElement('span'), { textContent: this.plain.divider.trim() }));
      this.divider.setAttribute('aria-hidden', 'true');
      this.divider.classList.remove('auth-divider-text');
      setText(this.heading, this.plain.heading);
      setText(this.tagline, this.plain.tagline);
    }
    this.createBtn.type = on ? 'submit' : 'button';
    this.submitBtn.type = on ? 'button' : 'submit';
    this.createBtn.className = `btn ${on ? 'btn-primary' : 'btn-secondary'} btn-block`;
    this.submitBtn.className = `btn ${on ? 'btn-secondary' : 'btn-primary'} btn-block`;
    this.password.setAttribute('autocomplete', on ? 'new-password' : 'current-password');
  }

  show(notice = '') {
    this.root.hidden = false;
    this.setBusy(false, null);
    this.password.value = '';
    this.showError(notice);
    const field = this.username.value ? this.password : this.username;
    field.focus();
  }

  hide() {
    this.root.hidden = true;
  }

  showError(text, fields = []) {
    setText(this.error, text || '');
    for (const input of [this.username, this.password]) {
      if (fields.includes(input)) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  }

  setBusy(busy, button) {
    this.busy = busy;
    this.form.setAttribute('aria-busy', busy ? 'true' : 'false');
    for (const b of [this.submitBtn, this.createBtn]) {
      b.disabled = busy;
      b.classList.toggle('is-loading', busy && b === button);
    }
  }

  /** The codes from the address that go along with a new account. */
  registerExtras() {
    const extra = {};
    if (this.invite) extra.invite = this.invite;
    if (this.setup) extra.setup = this.setup;
    return extra;
  }

  async run(action, button) {
    if (this.busy) return;
    const username = this.username.value.trim();
    const password = this.password.value;

    if (!username || !password) {
      const missing = !username ? this.username : this.password;
      this.showError(!username ? 'Enter a username.' : 'Enter a password.', [missing]);
      missing.focus();
      return;
    }
    this.username.value = username;

    this.showError('');
    this.setBusy(true, button);
    try {
      const data = action === 'login'
        ? await api.login(username, password)
        : await api.register(username, password, this.registerExtras());
      this.setBusy(false, null);
      this.password.value = '';
      if (this.invite) forgetParam('invite');
      this.invite = null;
      // Signing in to an existing account leaves the setup link for the account still to create.
      if (action === 'register' && this.setup) {
        // The administrator the setup link made is welcomed once signed in (onboarding.js).
        try { window.localStorage.setItem(welcomeKey(data.user.username), 'pending'); } catch { /* not kept */ }
        forgetParam('setup');
        this.setup = null;
      }
      // The codes are spent: after a sign-out the note no longer mentions them.
      this.applyMode(this.mode);
      this.o.onSignedIn(data.user);
    } catch (err) {
      this.setBusy(false, null);
      const e = err instanceof ApiError ? err : new ApiError(0, 'unknown', 'Something went wrong. Please try again.');
      let message = INVITE_MESSAGES[e.code] || e.message;
      if (e.code === 'invalid_invite') this.invite = null;
      if (INVITE_MESSAGES[e.code]) this.loadMode();
      if (e.status === 429 && e.retryAfter && !/\d/.test(message)) {
        message += ` Try again in ${formatWait(e.retryAfter)}.`;
      }
      const fields = {
        invalid_username: [this.username],
        username_taken: [this.username],
        weak_password: [this.password],
        password_too_long: [this.password],
        invalid_credentials: [this.username, this.password],
      }[e.code] || [];
      this.showError(message, fields);
      (fields.includes(this.password) && !fields.includes(this.username) ? this.password : this.username).focus();
    }
  }
}

const INVITE_MESSAGES = {
  registration_closed: 'Registration is closed on this server, so no new accounts can be created. Ask an administrator if you need one.',
  invite_required: 'This server only accepts new accounts with an invite link. Ask an administrator for one, then open it.',
  invalid_invite: 'This invite link no longer works: it may have expired, been used up or been revoked. Ask an administrator for a new one.',
};

/** How this site is called to people: the host of its address. */
function siteName() {
  try {
    const base = (window.HEARTH && window.HEARTH.url) || window.location.href;
    return new URL(base).host || 'this server';
  } catch {
    return 'this server';
  }
}

/** The code from `?invite=CODE` or `?setup=CODE`, if the page was opened from such a link. */
function codeFromUrl(param) {
  try {
    const code = new URLSearchParams(window.location.search).get(param);
    return code && code.trim() ? code.trim() : null;
  } catch {
    return null;
  }
}

/** Drop `?invite=` / `?setup=` from the address once used, so a reload does not reuse it. */
function forgetParam(param) {
  try {
    const url = new URL(window.location.href);
    url.searchParams.delete(param);
    window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
  } catch {
    // Not important enough to fail over.
  }
}

function formatWait(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}
