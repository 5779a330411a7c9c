// The rooms and direct messages the user belongs to, with their unread state,
// and the sidebar that lists them.

import { h } from './dom.js';
import { personAvatar } from './profiles.js';

export const NOTIFY_LEVELS = ['all', 'mentions', 'nothing'];

/** Fill in what an older server leaves out, so the rest of the UI can rely on it. */
export function normalizeRoom(r) {
  const name = String(r.name || '');
  const isDm = r.kind === 'dm' || name.startsWith('dm:');
  const users = Array.isArray(r.users)
    ? r.users.map(String)
    : isDm ? name.slice(3).split(',').filter(Boolean) : [];
  return {
    ...r,
    name,
    topic: r.topic || '',
    kind: isDm ? 'dm' : 'room',
    public: isDm ? false : r.public !== false,
    users,
    members: Number.isFinite(r.members) ? r.members : (isDm ? users.length : null),
    last_id: Number(r.last_id) || 0,
    last_read: Number(r.last_read) || 0,
    unread: Number(r.unread) || 0,
    mentions: Number(r.mentions) || 0,
    notify: NOTIFY_LEVELS.includes(r.notify) ? r.notify : 'all',
  };
}

const byName = (a, b) => a.localeCompare(b, undefined, { sensitivity: 'base' });

export class RoomStore {
  constructor() {
    this.map = new Map(); // name -> room
    this.me = '';
    this.known = false;   // the room list arrived (from the server) since the last clear()
    this.profiles = null; // display names for the titles of direct messages
  }

  setMe(name) { this.me = String(name || ''); }

  /** @param {import('./profiles.js').Profiles} profiles */
  setProfiles(profiles) { this.profiles = profiles; }

  clear() {
    this.map.clear();
    this.known = false;
  }

  setAll(list) {
    this.known = true;
    const previous = this.map;
    this.map = new Map();
    for (const r of list || []) {
      const room = normalizeRoom(r);
      // A server without unread state: keep what this page counted itself.
      const old = previous.get(room.name);
      if (old && r.unread === undefined) Object.assign(room, pick(old, ['unread', 'mentions', 'last_read', 'notify', 'last_id']));
      this.map.set(room.name, room);
    }
  }

  /** Add or refresh one room; fields the update does not carry are kept. */
  upsert(r) {
    const old = this.map.get(r.name);
    const fresh = normalizeRoom(old ? { ...old, ...r } : r);
    this.map.set(fresh.name, fresh);
    return fresh;
  }

  rename(oldName, r) {
    const old = this.map.get(oldName);
    this.map.delete(oldName);
    return this.upsert(old ? { ...old, ...r } : r);
  }

  remove(name) { return this.map.delete(name); }
  get(name) { return this.map.get(name) || null; }
  has(name) { return this.map.has(name); }
  all() { return Array.from(this.map.values()); }

  rooms() {
    return this.all().filter((r) => r.kind !== 'dm').sort((a, b) => {
      if (a.name === 'general') return -1;
      if (b.name === 'general') return 1;
      return byName(a.name, b.name);
    });
  }

  dms() {
    return this.all().filter((r) => r.kind === 'dm')
      .sort((a, b) => (b.last_id - a.last_id) || byName(this.title(a), this.title(b)));
  }

  /** The other participants of a DM (everyone, when it is a DM with yourself). */
  others(room) {
    const me = this.me.toLowerCase();
    const others = room.users.filter((u) => u.toLowerCase() !== me);
    return others.length ? others : room.users.slice(0, 1);
  }

  /** How a room is named to people: "general" or "alice, bob" (their display names). */
  title(room) {
    if (!room) return '';
    if (room.kind !== 'dm') return room.name;
    const names = this.others(room);
    return (this.profiles ? names.map((u) => this.profiles.name(u)) : names).join(', ');
  }

  /** "#general" or "alice, bob" (for labels and the page). */
  label(room) {
    if (!room) return '';
    return room.kind === 'dm' ? this.title(room) : `#${room.name}`;
  }

  /** The number that counts for a room: every unread message, or only mentions. */
  countFor(room) {
    return room.notify === 'all' ? room.unread : room.mentions;
  }

  totalUnread() {
    let n = 0;
    for (const r of this.map.values()) n += this.countFor(r);
    return n;
  }

  /** Every username this page knows from DMs. */
  knownUsers() {
    const out = new Set();
    for (const r of this.map.values()) for (const u of r.users) out.add(u);
    return out;
  }
}

function pick(obj, keys) {
  const out = {};
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}

/** The sidebar lists ("Rooms" and "Direct messages"). */
export class Sidebar {
  /**
   * @param {object} o
   * @param {RoomStore} o.store
   * @param {HTMLElement} o.roomList
   * @param {HTMLElement} o.dmList
   * @param {(name: string) => void} o.onOpen
   */
  constructor(o) {
    this.o = o;
    this.current = '';
  }

  /**
   * @param {string} current  the open room
   * @param {{offline?: boolean}} [state]  whether the server is out of reach
   */
  render(current, { offline = false } = {}) {
    this.current = current;
    const { store, roomList, dmList } = this.o;
    // Until the room list arrives, an empty list is not known to be empty.
    const unknown = !store.known;
    const waiting = offline ? 'Offline — conversations appear when connected.' : 'Loading conversations…';
    this.fill(roomList, store.rooms(), unknown ? waiting : 'No rooms yet.');
    this.fill(dmList, store.dms(), unknown ? waiting : 'No conversations yet.');
  }

  /**
   * Bring a list up to date, rebuilding only the entries that changed, so that
   * focus and elements survive the frequent updates (unread counts, presence).
   */
  fill(list, rooms, emptyText) {
    if (!this.cache) this.cache = new Map(); // name -> { key, li }
    const focusedRoom = list.contains(document.activeElement) && document.activeElement.dataset
      ? document.activeElement.dataset.room : null;
    const items = rooms.map((r) => {
      const key = this.key(r);
      const cached = this.cache.get(r.name);
      if (cached && cached.key === key && cached.li.parentNode === list) return cached.li;
      const li = this.item(r);
      this.cache.set(r.name, { key, li });
      return li;
    });
    if (!items.length) items.push(h('li', { class: 'room-empty' }, emptyText));
    const same = items.length === list.children.length && items.every((li, i) => list.children[i] === li);
    if (same) return;
    list.replaceChildren(...items);
    if (focusedRoom && !list.contains(document.activeElement)) {
      const link = Array.from(list.querySelectorAll('a[data-room]')).find((a) => a.dataset.room === focusedRoom);
      if (link) link.focus({ preventScroll: true });
    }
  }

  key(room) {
    const { store } = this.o;
    const face = room.kind === 'dm' ? store.others(room)[0] || '' : '';
    const picture = face && store.profiles ? store.profiles.picture(face) || '' : '';
    return [room.name === this.current, store.title(room), room.unread, room.mentions, room.notify,
      room.public, room.kind, face, picture, store.known].join('|');
  }

  item(room) {
    const { store } = this.o;
    const current = room.name === this.current;
    const level = room.notify;
    const count = current ? 0 : store.countFor(room);
    // Muted rooms stay quiet unless someone mentions you.
    const bold = !current && (level === 'nothing' ? room.mentions > 0 : level === 'mentions' ? room.mentions > 0 || room.unread > 0 : room.unread > 0);
    const showCount = !current && level === 'all' && room.unread > 0;
    const showMentions = !current && room.mentions > 0;
    const title = store.title(room);
    const isDm = room.kind === 'dm';

    const srParts = [];
    if (!current && room.unread > 0) srParts.push(`${room.unread} unread`);
    if (showMentions) srParts.push(`${room.mentions} mention${room.mentions === 1 ? '' : 's'}`);
    if (level === 'nothing') srParts.push('muted');
    else if (level === 'mentions') srParts.push('mentions only');
    if (!isDm && !room.public) srParts.push('private');

    const icon = isDm
      ? personAvatar(store.others(room)[0] || '?', store.profiles, 'xs')
      : h('span', { class: 'room-link-hash', 'aria-hidden': 'true' }, room.public ? '#' : lockIcon());
    const handles = isDm && store.profiles
      ? store.others(room).filter((u) => store.profiles.name(u) !== u).map((u) => `@${u}`) : [];

    return h('li', null,
      h('a', {
        class: `room-link${current ? ' is-current' : ''}${bold ? ' is-unread' : ''}${level === 'nothing' ? ' is-muted' : ''}`,
        href: `#${encodeURIComponent(room.name)}`,
        'aria-current': current ? 'page' : null,
        // Named in one piece: its parts are laid out apart, which would put spaces in a name
        // built from them ("history , 3 unread").
        'aria-label': srParts.length ? `${title}, ${srParts.join(', ')}` : null,
        dataset: { room: room.name },
        onclick: (e) => {
          if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
          e.preventDefault();
          this.o.onOpen(room.name);
        },
      },
      icon,
      h('span', { class: 'room-link-name', dir: 'auto', title: handles.length ? handles.join(', ') : null }, title),
      showMentions ? h('span', { class: 'room-mentions', 'aria-hidden': 'true', title: `${room.mentions} mention${room.mentions === 1 ? '' : 's'}` }, `@${room.mentions}`) : null,
      showCount ? h('span', { class: 'room-unread', 'aria-hidden': 'true' }, String(room.unread)) : null,
      !showCount && !showMentions && count === 0 && level === 'nothing'
        ? h('span', { class: 'room-muted-icon', 'aria-hidden': 'true', title: 'Muted' }, bellOff())
        : null));
  }
}

const SVG = 'http://www.w3.org/2000/svg';

function svgIcon(d) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', 'icon icon-xs');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', d);
  svg.append(path);
  return svg;
}

/** A person (a group conversation's icon). */
export const personIcon = () => svgIcon('M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8Zm0 2c-3.3 0-7 1.6-7 4.5V21h14v-2.5c0-2.9-3.7-4.5-7-4.5Z');
export const lockIcon = () => svgIcon('M7 10V7a5 5 0 0 1 10 0v3h1a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1h1Zm2 0h6V7a3 3 0 0 0-6 0v3Z');
export const bellOff = () => svgIcon('M4.3 3 3 4.3l3.2 3.2A6 6 0 0 0 6 9v5l-2 2v1h12.7l3 3 1.3-1.3L4.3 3ZM18 14V9a6 6 0 0 0-8.7-5.4L18 12.3V14Zm-6 8a2 2 0 0 0 2-2h-4a2 2 0 0 0 2 2Z');
