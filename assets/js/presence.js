// Who is online, and who is typing.

import { h, setText } from './dom.js';
import { listNames } from './format.js';
import { personAvatar, personParts } from './profiles.js';

const TYPING_TTL_MS = 5000;

export class OnlineList {
  /**
   * @param {object} o
   * @param {HTMLElement} o.listEl
   * @param {HTMLElement[]} o.countEls
   * @param {(user: string) => void} [o.onPick]  a person was chosen (start a direct message)
   * @param {import('./profiles.js').Profiles} [o.profiles]  display names, statuses, pictures
   */
  constructor({ listEl, countEls, onPick, profiles }) {
    this.listEl = listEl;
    this.countEls = countEls;
    this.onPick = onPick || null;
    this.profiles = profiles || null;
    this.me = '';
    this.users = new Map(); // lowercased -> display name
    this.isOffline = false;  // disconnected: nobody is known to be online
  }

  setMe(name) {
    this.me = name;
    this.render();
  }

  reset(usernames = []) {
    this.isOffline = false;
    this.users.clear();
    for (const u of usernames) this.users.set(String(u).toLowerCase(), String(u));
    this.render();
  }

  /** The connection dropped: the list empties until the next `reset` (from `ready`). */
  offline() {
    if (this.isOffline) return;
    this.isOffline = true;
    this.users.clear();
    this.render();
  }

  set(user, online) {
    const key = String(user).toLowerCase();
    if (online) this.users.set(key, String(user));
    else this.users.delete(key);
    this.render();
  }

  has(user) { return this.users.has(String(user).toLowerCase()); }

  names() { return Array.from(this.users.values()); }

  render() {
    const meKey = this.me.toLowerCase();
    const shown = (u) => (this.profiles ? this.profiles.name(u) : u);
    const names = Array.from(this.users.values()).sort((a, b) => {
      const ak = a.toLowerCase() === meKey ? 0 : 1;
      const bk = b.toLowerCase() === meKey ? 0 : 1;
      return ak - bk || shown(a).localeCompare(shown(b), undefined, { sensitivity: 'base' });
    });
    this.listEl.replaceChildren(...names.map((name, i) => {
      const self = name.toLowerCase() === meKey;
      // Their display name (with @username when it differs) and status line.
      const who = personParts(name, this.profiles);
      const statusId = who.status ? `online-status-${i}` : null;
      const content = [
        h('span', { class: 'person-avatar' }, personAvatar(name, this.profiles), h('span', { class: 'presence-dot', 'aria-hidden': 'true' })),
        h('span', { class: 'person-text' },
          h('span', { class: 'person-line' },
            h('span', { class: 'person-name', dir: 'auto' }, who.name),
            who.handle ? h('span', { class: 'person-handle' }, who.handle) : null,
            self ? h('span', { class: 'person-tag' }, 'you') : null),
          who.status ? h('span', { class: 'person-status', id: statusId, dir: 'auto' }, who.status) : null),
      ];
      if (self || !this.onPick) return h('li', { class: `person${self ? ' is-self' : ''}` }, content);
      const label = who.handle ? `${who.name} (${who.handle})` : who.name;
      return h('li', { class: 'person' },
        h('button', {
          type: 'button',
          class: 'person-btn',
          'aria-label': `Message ${label}`,
          'aria-describedby': statusId,
          title: `Send ${label} a direct message`,
          dataset: { user: name },
          onclick: () => this.onPick(name),
        }, content));
    }));
    if (this.isOffline) {
      this.listEl.append(h('li', { class: 'person-empty person-offline' }, 'Offline: who is online shows again once Hearth reconnects.'));
    } else if (!names.length) {
      this.listEl.append(h('li', { class: 'person-empty' }, 'Nobody is here yet.'));
    }
    for (const el of this.countEls) setText(el, String(names.length));
  }
}

export class TypingIndicator {
  constructor(el) {
    this.el = el;
    this.timers = new Map(); // lowercased user -> { name, timer }
  }

  add(user) {
    const key = String(user).toLowerCase();
    const entry = this.timers.get(key);
    if (entry) clearTimeout(entry.timer);
    this.timers.set(key, {
      name: String(user),
      timer: setTimeout(() => this.remove(user), TYPING_TTL_MS),
    });
    this.render();
  }

  remove(user) {
    const key = String(user).toLowerCase();
    const entry = this.timers.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.timers.delete(key);
    this.render();
  }

  clear() {
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.render();
  }

  render() {
    const names = Array.from(this.timers.values(), (e) => e.name);
    if (!names.length) {
      this.el.classList.remove('is-active');
      this.el.replaceChildren();
      return;
    }
    const text = names.length > 3
      ? 'Several people are typing…'
      : `${listNames(names)} ${names.length === 1 ? 'is' : 'are'} typing…`;
    this.el.classList.add('is-active');
    this.el.replaceChildren(
      h('span', { class: 'typing-dots', 'aria-hidden': 'true' }, h('span'), h('span'), h('span')),
      h('span', { class: 'typing-text' }, text),
    );
  }
}
