// The sign-in / create-account view.

import { api, ApiError } from './api.js';
import { $, setText } from './dom.js';

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
    this.busy = false;

    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.run('login', this.submitBtn);
    });
    this.createBtn.addEventListener('click', () => this.run('register', this.createBtn));
    for (const input of [this.username, this.password]) {
      input.addEventListener('input', () => input.removeAttribute('aria-invalid'));
    }
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
        : await api.register(username, password);
      this.setBusy(false, null);
      this.password.value = '';
      this.o.onSignedIn(data.user);
    } catch (err) {
      this.setBusy(false, null);
      const e = err instanceof ApiError ? err : new ApiError(0, 'unknown', 'Something went wrong. Please try again.');
      let message = e.message;
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

function formatWait(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}
