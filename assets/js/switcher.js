// The quick switcher (Ctrl/Cmd+K): a filterable list of rooms and direct
// messages in a modal dialog. A combobox with a listbox popup: arrows move,
// Enter opens, Escape closes. For typed text it also offers people ("Person":
// opens the DM with them, creating it) and public rooms the reader has not
// joined ("Join room": joins and opens it), asked of the server once typing
// pauses.

import { $, h } from './dom.js';
import { openDialog, wireDialog } from './dialogs.js';
import { personAvatar, personParts } from './profiles.js';
import { api, ApiError } from './api.js';

const MAX = 50;
const MAX_REMOTE = 8;
const DEBOUNCE_MS = 200;
const USERNAME = /^[A-Za-z0-9_.-]{1,32}$/;

/** "3 unread, 1 mention" for screen readers (the badges are pictures of it). */
function badgeText(r) {
  const parts = [];
  if (r.unread > 0 && r.notify !== 'nothing') parts.push(`${r.unread} unread`);
  if (r.mentions > 0) parts.push(`${r.mentions} mention${r.mentions === 1 ? '' : 's'}`);
  return parts.join(', ');
}

export class Switcher {
  constructor(app) {
    this.app = app;
    this.dialog = $('#switcher');
    this.input = $('#switcher-input');
    this.list = $('#switcher-list');
    this.items = [];
    this.active = 0;
    this.people = [];       // [{username, online}] for `remoteFor`
    this.unjoined = [];     // public rooms the reader is not in, for `remoteFor`
    this.remoteFor = null;  // the query `people` and `unjoined` answer
    this.directory = null;  // the public rooms, fetched once per opening
    this.remoteSeq = 0;
    this.remoteTimer = 0;
    wireDialog(this.dialog);

    $('#switcher-open').addEventListener('click', () => this.open());
    this.input.addEventListener('input', () => {
      this.active = 0;
      this.render();
      this.askServerSoon();
    });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        this.move(e.key === 'ArrowDown' ? 1 : -1);
      } else if (e.key === 'Home' && e.ctrlKey) {
        e.preventDefault();
        this.setActive(0);
      } else if (e.key === 'End' && e.ctrlKey) {
        e.preventDefault();
        this.setActive(this.items.length - 1);
      } else if (e.key === 'Enter') {
        e.preventDefault();
        const item = this.items[this.active];
        if (item) this.chooseItem(item);
      }
    });
    this.list.addEventListener('pointerdown', (e) => e.preventDefault());
  }

  get isOpen() { return this.dialog.open; }

  open() {
    if (this.isOpen) return;
    this.input.value = '';
    this.active = 0;
    this.directory = null;
    this.remoteFor = null;
    this.render();
    openDialog(this.dialog, this.input);
  }

  close() {
    if (this.isOpen) this.dialog.close();
  }

  /** The rooms changed: refresh the list when it is showing. */
  refresh() {
    if (this.isOpen) this.render();
  }

  candidates() {
    const store = this.app.store;
    const q = this.input.value.trim().toLowerCase().replace(/^[#@]/, '');
    const all = store.rooms().concat(store.dms());
    const scored = [];
    for (const r of all) {
      const title = store.title(r).toLowerCase();
      // A direct message is found by its people's usernames too ("dm:alice,bob").
      const name = r.name.toLowerCase();
      let score;
      if (!q) score = 2;
      else if (title.startsWith(q) || name.startsWith(q)) score = 0;
      else if (title.includes(q) || name.includes(q)) score = 1;
      else continue;
      // Unread conversations first among equals.
      scored.push({ r, score: score * 2 + (store.countFor(r) > 0 ? 0 : 1) });
    }
    scored.sort((a, b) => a.score - b.score);
    return scored.slice(0, MAX).map((x) => x.r);
  }

  /** The typed text, without a leading `#` or `@`. */
  query() {
    return this.input.value.trim().replace(/^[#@]/, '');
  }

  /** Ask the server for people and public rooms once typing pauses. */
  askServerSoon() {
    clearTimeout(this.remoteTimer);
    const q = this.query();
    if (!q) return;
    this.remoteTimer = setTimeout(() => this.askServer(q), DEBOUNCE_MS);
  }

  async askServer(q) {
    const seq = ++this.remoteSeq;
    const [people, directory] = await Promise.all([
      USERNAME.test(q) ? api.users({ q, limit: MAX_REMOTE }).then((d) => (d && d.users) || []).catch(() => []) : [],
      this.directory || api.directory().then((d) => (d && d.rooms) || []).catch(() => null),
    ]);
    if (seq !== this.remoteSeq || !this.isOpen) return;
    if (directory) this.directory = directory;
    const key = q.toLowerCase();
    const store = this.app.store;
    this.people = people.filter((p) => !this.app.isMe(p.username));
    this.unjoined = (this.directory || [])
      .filter((r) => !r.joined && !store.has(r.name) && r.name.toLowerCase().includes(key))
      .sort((a, b) => Number(!a.name.toLowerCase().startsWith(key)) - Number(!b.name.toLowerCase().startsWith(key)))
      .slice(0, MAX_REMOTE);
    this.remoteFor = q;
    if (this.query() === q) this.render();
  }

  /** Rooms and DMs, then (for the typed text) people and public rooms to join. */
  allItems() {
    const store = this.app.store;
    const rooms = this.candidates();
    const items = rooms.map((r) => ({ kind: 'room', key: r.name, r }));
    const q = this.query();
    if (!q || this.remoteFor !== q) return items;
    // A person whose one-to-one DM is listed already is that DM.
    const listed = new Set(rooms.filter((r) => r.kind === 'dm' && store.others(r).length === 1)
      .map((r) => store.others(r)[0].toLowerCase()));
    for (const p of this.people) {
      if (!listed.has(p.username.toLowerCase())) items.push({ kind: 'person', key: p.username, p });
    }
    for (const r of this.unjoined) items.push({ kind: 'join', key: r.name, r });
    return items;
  }

  render() {
    this.items = this.allItems();
    if (this.active >= this.items.length) this.active = Math.max(0, this.items.length - 1);
    this.list.replaceChildren(...this.items.map((item, i) => this.option(item, i)));
    if (!this.items.length) {
      this.list.append(h('li', { class: 'switcher-empty', role: 'presentation' }, 'Nothing matches.'));
      this.input.removeAttribute('aria-activedescendant');
    } else {
      this.input.setAttribute('aria-activedescendant', `switcher-option-${this.active}`);
    }
  }

  option(item, i) {
    const attrs = {
      id: `switcher-option-${i}`,
      role: 'option',
      class: `switcher-option switcher-${item.kind}`,
      'aria-selected': i === this.active ? 'true' : 'false',
      dataset: { kind: item.kind, key: item.key },
      onclick: () => this.chooseItem(item),
    };
    const profiles = this.app.profiles;
    if (item.kind === 'person') {
      const p = item.p;
      const who = personParts(p.username, profiles);
      return h('li', attrs, personAvatar(p.username, profiles, 'xs'),
        h('span', { class: 'switcher-name', dir: 'auto' }, who.name),
        who.handle ? h('span', { class: 'switcher-handle' }, who.handle) : null,
        p.online ? h('span', { class: 'visually-hidden' }, ', online') : null,
        h('span', { class: 'switcher-tag' }, 'Person'));
    }
    if (item.kind === 'join') {
      return h('li', attrs, h('span', { class: 'room-link-hash', 'aria-hidden': 'true' }, '#'),
        h('span', { class: 'switcher-name' }, item.r.name),
        h('span', { class: 'switcher-tag' }, 'Join room'));
    }
    const store = this.app.store;
    const r = item.r;
    const count = store.countFor(r);
    const isDm = r.kind === 'dm';
    attrs.dataset.room = r.name;
    const handles = isDm ? store.others(r).filter((u) => personParts(u, profiles).handle).map((u) => `@${u}`) : [];
    return h('li', attrs,
      isDm ? personAvatar(store.others(r)[0] || '?', profiles, 'xs') : h('span', { class: 'room-link-hash', 'aria-hidden': 'true' }, '#'),
      h('span', { class: 'switcher-name', dir: isDm ? 'auto' : null }, store.title(r)),
      handles.length ? h('span', { class: 'switcher-handle' }, handles.join(', ')) : null,
      r.name === this.app.current ? h('span', { class: 'switcher-tag' }, 'open') : null,
      r.mentions > 0 ? h('span', { class: 'room-mentions', 'aria-hidden': 'true' }, `@${r.mentions}`) : null,
      count > 0 && r.notify === 'all' ? h('span', { class: 'room-unread', 'aria-hidden': 'true' }, String(count)) : null,
      badgeText(r) ? h('span', { class: 'visually-hidden' }, `, ${badgeText(r)}`) : null);
  }

  move(delta) {
    if (!this.items.length) return;
    this.setActive((this.active + delta + this.items.length) % this.items.length);
  }

  setActive(i) {
    this.active = i;
    for (const [j, li] of Array.from(this.list.children).entries()) {
      li.setAttribute('aria-selected', j === i ? 'true' : 'false');
      if (j === i) li.scrollIntoView({ block: 'nearest' });
    }
    this.input.setAttribute('aria-activedescendant', `switcher-option-${i}`);
  }

  async chooseItem(item) {
    if (item.kind === 'person') {
      this.close();
      await this.app.startDm([item.p.username]);
    } else if (item.kind === 'join') {
      this.close();
      await this.join(item.r.name);
    } else {
      await this.choose(item.r.name);
    }
  }

  async choose(name) {
    this.close();
    await this.app.openRoom(name);
    this.app.focusConversation();
  }

  /** "Join room": join the public room `name` and open it. */
  async join(name) {
    try {
      const data = await api.join(name);
      this.app.store.upsert(data && data.room ? data.room : { name, kind: 'room', public: true });
      this.app.render();
      await this.app.openRoom(name);
      this.app.announce(`You joined #${name}.`);
      this.app.focusConversation();
    } catch (err) {
      this.app.showRoomError(err instanceof ApiError ? err.message : 'Could not join that room.');
    }
  }
}


