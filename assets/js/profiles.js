// Profiles: display names, status lines and pictures. Messages name people by username; the
// page shows each author's display name (the username in a tooltip, and for @mentions) and
// picture from the profiles `ready` carries and `profile` frames update. The profile dialog
// edits one's own.

import { $, h, setText } from './dom.js';
import { avatar, hueIndex, initial } from './format.js';
import { api, ApiError } from './api.js';
import { wireDialog } from './dialogs.js';

/** Everyone's profile that has something set, by username (ignoring case). */
export class Profiles {
  constructor() {
    this.map = new Map();
    this.listeners = [];
  }

  /** All profiles (from `ready`). */
  setAll(list) {
    this.map.clear();
    for (const p of Array.isArray(list) ? list : []) {
      if (p && typeof p.username === 'string') this.map.set(p.username.toLowerCase(), p);
    }
    for (const fn of this.listeners) fn(null);
  }

  /** One changed (a `profile` frame, or one's own edit). */
  update(p) {
    if (!p || typeof p.username !== 'string') return;
    this.map.set(p.username.toLowerCase(), p);
    for (const fn of this.listeners) fn(p.username);
  }

  /** Call `fn(username)` after a change (`null`: all of them). */
  onChange(fn) { this.listeners.push(fn); }

  get(username) { return this.map.get(String(username).toLowerCase()) || null; }

  /** What to call `username`: their display name, else the username. */
  name(username) {
    const p = this.get(username);
    return p && p.display_name ? p.display_name : username;
  }

  /** Their picture's address, relative to the page (null: none). */
  picture(username) {
    const p = this.get(username);
    return p && p.avatar_url ? String(p.avatar_url).replace(/^\//, '') : null;
  }
}

/**
 * Paint the avatar element `el` for `username`: their picture when they set one, else the
 * initial of their display name on their colour. Decorative either way (aria-hidden).
 */
export function paintAvatar(el, username, profiles) {
  const url = profiles ? profiles.picture(username) : null;
  const shown = profiles ? profiles.name(username) : username;
  el.className = el.className.replace(/\bhue-\d\b/g, '').trim() + ` hue-${hueIndex(username)}`;
  el.dataset.initial = initial(shown);
  el.dataset.author = username;
  const img = el.querySelector('img');
  if (url) {
    el.classList.add('has-picture');
    if (img) {
      if (img.getAttribute('src') !== url) img.src = url;
    } else {
      el.append(h('img', { src: url, alt: '', loading: 'lazy', decoding: 'async' }));
    }
  } else {
    el.classList.remove('has-picture');
    if (img) img.remove();
  }
}

/** `username`'s avatar element: their picture when they set one, else their initial. */
export function personAvatar(username, profiles, size = '') {
  const el = avatar(username, size);
  if (profiles) paintAvatar(el, username, profiles);
  return el;
}

/**
 * How a person is shown in a list: `name` (their display name, else the username), `handle`
 * (`@username` when the display name is not the username: two people may both be "Sam") and
 * `status` (their status line, or '').
 */
export function personParts(username, profiles) {
  const user = String(username);
  const p = profiles ? profiles.get(user) : null;
  const name = p && p.display_name ? p.display_name : user;
  return {
    name,
    handle: name !== user ? `@${user}` : '',
    status: p && p.status ? p.status : '',
  };
}

/** The "Your profile" dialog: display name, status and picture. */
export class ProfileDialog {
  /**
   * @param {object} o
   * @param {Profiles} o.profiles
   * @param {() => string} o.me  the signed-in username
   */
  constructor(o) {
    this.o = o;
    this.dialog = $('#profile-dialog');
    wireDialog(this.dialog);
    this.name = $('#profile-name');
    this.status = $('#profile-status');
    this.error = $('#profile-error');
    this.picture = $('#profile-picture');
    this.pictureInput = $('#profile-picture-input');
    $('#profile-open').addEventListener('click', () => this.open());
    $('#profile-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.save();
    });
    $('#profile-picture-change').addEventListener('click', () => this.pictureInput.click());
    this.pictureInput.addEventListener('change', () => {
      const file = this.pictureInput.files && this.pictureInput.files[0];
      this.pictureInput.value = '';
      if (file) this.upload(file);
    });
    $('#profile-picture-remove').addEventListener('click', () => this.removePicture());
  }

  open() {
    const me = this.o.me();
    const p = this.o.profiles.get(me) || {};
    this.name.value = p.display_name || '';
    this.name.placeholder = me;
    this.status.value = p.status || '';
    setText(this.error, '');
    this.showPicture();
    this.dialog.showModal();
    this.name.focus();
  }

  showPicture() {
    const me = this.o.me();
    paintAvatar(this.picture, me, this.o.profiles);
    $('#profile-picture-remove').hidden = !this.o.profiles.picture(me);
  }

  async save() {
    setText(this.error, '');
    try {
      const res = await api.updateProfile({ display_name: this.name.value, status: this.status.value });
      this.o.profiles.update(res.user);
      this.dialog.close();
    } catch (e) {
      setText(this.error, e instanceof ApiError ? e.message : 'The profile could not be saved.');
    }
  }

  async upload(file) {
    setText(this.error, '');
    let res;
    try {
      res = await fetch('api/me/avatar', {
        method: 'PUT',
        credentials: 'same-origin',
        headers: { 'Content-Type': file.type || 'application/octet-stream', Accept: 'application/json' },
        body: file,
      });
    } catch {
      setText(this.error, 'Can’t reach the server. Check your connection and try again.');
      return;
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      setText(this.error, (body.error && body.error.message) || `The picture could not be saved (HTTP ${res.status}).`);
      return;
    }
    this.o.profiles.update(body.user);
    this.showPicture();
  }

  async removePicture() {
    setText(this.error, '');
    try {
      const res = await api.removeAvatar();
      this.o.profiles.update(res.user);
      this.showPicture();
    } catch (e) {
      setText(this.error, e instanceof ApiError ? e.message : 'The picture could not be removed.');
    }
  }
}
