// What the reader has written but not sent, kept in localStorage per user so that a reload
// loses none of it: the draft of each room and direct message, and the outbox (messages sent
// while the server was out of reach and not acknowledged yet). Other tabs of the same user
// share the storage: each change is merged into what is stored, never written over it. A tab
// that opens takes on the stored outbox, so two tabs can hold the same message: when one of
// them takes it out (discarded, or stored by the server), the other lets it go too instead
// of writing it back. Where storage is unavailable (disabled, full, a private window that
// refuses it) all of this lasts as long as the page.

const PREFIX = 'hearth:';

export class Drafts {
  /**
   * @param {object} [o]
   * @param {(nonces: string[]) => void} [o.onTaken]  another tab took these of this page's
   *   outbox messages out of the stored outbox (see `takenElsewhere`)
   */
  constructor({ onTaken = null } = {}) {
    this.user = '';
    this.drafts = new Map(); // room -> text
    this.mine = new Set();   // nonces of the outbox messages this page has (had) to send
    this.seen = new Set();   // nonces in the stored outbox when this page last read or wrote it
    this.outboxJson = '';
    this.onTaken = onTaken;

    // Another tab changed the stored outbox (the event never fires in the tab that wrote).
    window.addEventListener('storage', (e) => {
      if (!this.user || e.key !== this.key('outbox')) return;
      if (e.storageArea && e.storageArea !== window.localStorage) return;
      const taken = this.takenElsewhere(this.outbox());
      this.noteStored();
      if (taken.length && this.onTaken) this.onTaken(taken);
    });
  }

  /** Load what `username` left in this browser. */
  open(username) {
    this.user = String(username || '').toLowerCase();
    this.mine.clear();
    this.outboxJson = '';
    this.drafts = this.stored();
    this.noteStored();
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

  /**
   * This page's unsent messages are `list` (other pages' entries stay as they are). Returns
   * the nonces of those another page took out of the stored outbox meanwhile (see
   * `takenElsewhere`): they are not written back, and the page should let them go.
   */
  setOutbox(list) {
    if (!this.user) return [];
    const json = JSON.stringify(list);
    if (json === this.outboxJson) return [];
    const stored = this.outbox();
    const taken = this.takenElsewhere(stored);
    const keep = taken.length ? list.filter((m) => !taken.includes(m.nonce)) : list;
    this.outboxJson = keep === list ? json : JSON.stringify(keep);
    const others = stored.filter((m) => !this.mine.has(m.nonce));
    this.adopt(keep);
    const next = others.concat(keep);
    write(this.key('outbox'), next.length ? next : null);
    this.noteStored();
    return taken;
  }

  /**
   * Nonces of this page's outbox messages that were stored when this page last looked and
   * are not in `stored` any more: another page took them out (it discarded them, or the
   * server stored them), and they are not this page's to keep either.
   */
  takenElsewhere(stored) {
    const now = new Set(stored.map((m) => m.nonce));
    return Array.from(this.seen).filter((nonce) => this.mine.has(nonce) && !now.has(nonce));
  }

  /**
   * Remember which messages the stored outbox holds, as read back (a write that storage
   * refused leaves out what it did not keep, which then never counts as taken out).
   */
  noteStored() {
    this.seen = new Set(this.outbox().map((m) => m.nonce));
  }

  /** Signing out: leave nothing of this user's behind. */
  forget() {
    if (!this.user) return;
    write(this.key('drafts'), null);
    write(this.key('outbox'), null);
    this.drafts.clear();
    this.mine.clear();
    this.seen.clear();
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
