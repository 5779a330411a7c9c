// What the reader has written but not sent, kept in localStorage per user so that a reload
// loses none of it: the draft of each room and direct message, and the outbox (messages sent
// while the server was out of reach and not acknowledged yet). Other tabs of the same user
// share the storage: each change is merged into what is stored, never written over it. Where
// storage is unavailable (disabled, full, a private window that refuses it) all of this lasts
// as long as the page.

const PREFIX = 'hearth:';

export class Drafts {
  constructor() {
    this.user = '';
    this.drafts = new Map(); // room -> text
    this.mine = new Set();   // nonces of the outbox messages this page has (had) to send
    this.outboxJson = '';
  }

  /** Load what `username` left in this browser. */
  open(username) {
    this.user = String(username || '').toLowerCase();
    this.mine.clear();
    this.outboxJson = '';
    this.drafts = this.stored();
  }

  key(kind) { return `${PREFIX}${kind}:${this.user}`; }

  /** The drafts as stored now (by this page or another one). */
  stored() {
    const out = new Map();
    const saved = this.user ? read(this.key('drafts')) : null;
    if (saved && typeof saved === 'object' && !Array.isArray(saved)) {
      for (const [room, text] of Object.entries(saved)) {
        if (typeof text === 'string' && text.trim()) out.set(room, text);
      }
    }
    return out;
  }

  get(room) { return this.drafts.get(room) || ''; }

  set(room, text) {
    if (!this.user || !room) return;
    const value = String(text || '');
    if ((this.drafts.get(room) || '') === (value.trim() ? value : '')) return;
    this.change((all) => {
      if (value.trim()) all.set(room, value);
      else all.delete(room);
    });
  }

  delete(room) {
    if (!this.user || !this.drafts.has(room)) return;
    this.change((all) => all.delete(room));
  }

  rename(oldName, newName) {
    if (!this.user || !this.drafts.has(oldName)) return;
    const text = this.drafts.get(oldName);
    this.change((all) => {
      all.delete(oldName);
      all.set(newName, text);
    });
  }

  change(update) {
    const all = this.stored();
    update(all);
    this.drafts = all;
    write(this.key('drafts'), all.size ? Object.fromEntries(all) : null);
  }

  /** The stored outbox: `[{nonce, room, body, reply_to?, attachments?}]`, oldest first. */
  outbox() {
    if (!this.user) return [];
    const list = read(this.key('outbox'));
    if (!Array.isArray(list)) return [];
    return list.filter((m) => m && typeof m.nonce === 'string' && typeof m.room === 'string'
      && typeof m.body === 'string'
      && (m.body.trim() || (Array.isArray(m.attachments) && m.attachments.length)));
  }

  /** This page is sending these stored messages now. */
  adopt(list) {
    for (const m of list) this.mine.add(m.nonce);
  }

  /** This page's unsent messages are `list` (other pages' entries stay as they are). */
  setOutbox(list) {
    if (!this.user) return;
    const json = JSON.stringify(list);
    if (json === this.outboxJson) return;
    this.outboxJson = json;
    const others = this.outbox().filter((m) => !this.mine.has(m.nonce));
    this.adopt(list);
    const next = others.concat(list);
    write(this.key('outbox'), next.length ? next : null);
  }

  /** Signing out: leave nothing of this user's behind. */
  forget() {
    if (!this.user) return;
    write(this.key('drafts'), null);
    write(this.key('outbox'), null);
    this.drafts.clear();
    this.mine.clear();
    this.outboxJson = '';
    this.user = '';
  }
}

function read(key) {
  try {
    const raw = window.localStorage.getItem(key);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function write(key, value) {
  try {
    if (value == null) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage refused (quota, privacy settings): the page still has it in memory.
  }
}
