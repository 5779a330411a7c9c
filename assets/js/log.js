// The message list: ordering by id, de-duplication, grouping, day separators,
// pending/failed messages, the "New messages" divider, windows of history
// around a message (with newer pages below), and scroll behaviour. Each row shows
// its message in its current state: edits ("(edited)"), deletions (a tombstone),
// reactions and the quote of the message it replies to; actions.js adds what a
// reader can do with it.
//
// One role=log element shows one room at a time. Every room that was opened
// keeps its own RoomLog (rows, scroll position, paging state), so switching
// back is instant; live messages keep flowing into rooms that are not shown.

import { h, setText, prefersReducedMotion } from './dom.js';
import { avatar, dayKey, dayLabel, formatFull, formatTime, mentions, parseTs } from './format.js';
import { autoDir, renderMarkdown } from './markdown.js';
import { actionBody, actionText } from './commands.js';
import { MessageActions } from './actions.js';
import { attachmentsView, linkPreviewView } from './uploads.js';
import { paintAvatar } from './profiles.js';

const GROUP_WINDOW_MS = 5 * 60 * 1000;
const PIN_THRESHOLD_PX = 56;
const LOAD_THRESHOLD_PX = 400;
// Change frames per room kept to apply again over history read meanwhile.
const RECENT_CHANGES = 300;
/** How much of the original a reply quotes (as the server does). */
const EXCERPT_CHARS = 200;
const DELETED_TEXT = 'This message was deleted.';
/**
 * What can take the focus inside a message: its links, buttons ("Copy code", the quote,
 * reactions, files), and code blocks that scroll (browsers give those a tab stop of their own).
 */
const INNER_FOCUSABLE = 'a[href], button, input, select, textarea, summary, iframe, '
  + 'audio[controls], video[controls], pre, [tabindex], [contenteditable]';
let textIds = 0; // for the ids of message texts (the rows' descriptions)

/** Everything the log knows about one room. */
export class RoomLog {
  constructor(room) {
    this.room = room;
    this.title = room;
    this.el = h('div', { class: 'messages' });
    this.confirmed = []; // rows ordered by id
    this.pending = [];   // own unsent/unacknowledged rows, in the order written
    this.byId = new Map();
    this.byNonce = new Map();
    this.loaded = false;       // a first page of history arrived
    this.reachedStart = false; // the oldest message is shown
    this.reachedEnd = true;    // the newest message is shown (false after a jump into the past)
    this.jumped = false;       // the reader jumped to a message: "Jump to latest" until back at the newest
    this.buffer = [];          // live messages that arrived while !reachedEnd
    this.changes = [];         // recent edits, deletions, reactions and previews applied, in order
    this.loadingOlder = false;
    this.olderFailed = false;
    this.loadingNewer = false;
    this.newerFailed = false;
    this.pinned = true;
    this.scrollTop = 0;
    this.dividerRow = null;
    this.targetRow = null;
    this.preview = false;
    this.focusRow = null;      // the row that is the log's tab stop
    this.followNewest = true;  // ...and it moves to each new newest message
    this.notes = [];           // system lines ("carol joined"): elements, live only
    this.epoch = 0;            // bumped by clearHistory: a page asked for before is dropped
  }

  get oldestId() { return this.confirmed.length ? this.confirmed[0].id : 0; }
  get newestId() { return this.confirmed.length ? this.confirmed[this.confirmed.length - 1].id : 0; }
  /**
   * The newest message of the window read from history: the reader's own messages confirmed
   * while a window into the past is shown sit below it, ahead of messages not loaded yet.
   */
  get windowNewestId() {
    if (this.reachedEnd || !this.buffer.length) return this.newestId;
    const ahead = new Set(this.buffer.map((m) => m && m.id));
    for (let i = this.confirmed.length - 1; i >= 0; i--) {
      if (!ahead.has(this.confirmed[i].id)) return this.confirmed[i].id;
    }
    return 0;
  }

  /** Forget the confirmed history (pending messages stay). */
  clearHistory() {
    this.epoch++;
    this.loadingOlder = false;
    this.loadingNewer = false;
    for (const row of this.confirmed) unplaceRow(row);
    for (const el of this.notes) el.remove();
    this.jumped = false;
    this.notes = [];
    this.confirmed = [];
    this.byId.clear();
    this.loaded = false;
    this.reachedStart = false;
    this.reachedEnd = true;
    this.buffer = [];
    this.dividerRow = null;
    this.targetRow = null;
    this.olderFailed = false;
    this.newerFailed = false;
    this.focusRow = null;
    this.followNewest = true;
  }
}

export class MessageLog {
  /**
   * @param {object} o
   * @param {HTMLElement} o.logEl      the scrolling role=log element
   * @param {HTMLElement} o.listEl     holds the shown room's message container
   * @param {HTMLElement} o.startEl    "Beginning of #room"
   * @param {HTMLElement} o.loaderEl   holds the load-older button and spinner
   * @param {HTMLButtonElement} o.loadBtn
   * @param {HTMLElement} o.loadingEl
   * @param {HTMLElement} o.newerEl    holds the load-newer button and spinner
   * @param {HTMLButtonElement} o.newerBtn
   * @param {HTMLElement} o.newerLoadingEl
   * @param {HTMLButtonElement} o.jumpBtn "New messages ↓" (or "Jump to latest ↓" after a jump into the past)
   * @param {HTMLButtonElement} o.unreadBtn "Jump to first unread" (shown while the "New messages"
   *   divider is out of view)
   * @param {(room: string, beforeId: number) => Promise<{messages: object[], reachedStart: boolean}>} o.onLoadOlder
   * @param {(room: string, afterId: number) => Promise<{messages: object[], reachedEnd: boolean}>} o.onLoadNewer
   * @param {() => void} o.onJumpToLatest   the reader wants the newest messages (after a jump into the past)
   * @param {(nonce: string) => void} o.onRetry
   * @param {(nonce: string) => void} o.onDiscard
   * @param {() => void} o.onSeen      the newest messages may have become visible
   * @param {(s: RoomLog, row: object) => ({reply, react, edit, delete}|null)} o.permissions
   *   what the reader may do with a confirmed message
   * @param {(s: RoomLog, row: object) => void} o.onReply
   * @param {(s: RoomLog, row: object, emoji: string, on: boolean) => void} o.onReact
   * @param {(s: RoomLog, row: object, body: string) => ({nonce: string}|{error: string})} o.onEdit
   * @param {(s: RoomLog, row: object) => Promise<void>} o.onDelete  asks first
   * @param {(s: RoomLog, row: object) => void} o.onQuote  show the message a reply answers
   */
  constructor(o) {
    this.o = o;
    this.logEl = o.logEl;
    this.listEl = o.listEl;
    this.me = '';
    this.rooms = new Map(); // name -> RoomLog
    this.s = null;          // the RoomLog shown
    this.scrollQueued = false;
    this.quietScroll = false; // the next scroll event is the log placing the divider
    this.lastDayKey = dayKey(new Date());
    this.rowEls = new WeakMap(); // row element -> row
    this.innerRow = null;        // the row whose contents are in the Tab order (it has focus)
    this.savedTabs = new WeakMap(); // element inside a row -> its own tabindex (null: none)
    this.actions = new MessageActions(this, o);

    // One tab stop for the whole list: only the message holding the focus has its links and
    // buttons in the Tab order (Tab from a message goes through them).
    this.logEl.addEventListener('focusin', (e) => {
      const el = e.target instanceof Element ? e.target.closest('.msg') : null;
      this.openInner(el ? this.rowEls.get(el) || null : null);
    });
    this.logEl.addEventListener('focusout', (e) => {
      const row = this.innerRow;
      const next = e.relatedTarget;
      if (row && !(next instanceof Node && row.el.contains(next))) this.openInner(null);
    });

    this.logEl.addEventListener('scroll', () => this.onScroll(), { passive: true });
    o.loadBtn.addEventListener('click', () => this.loadOlder());
    o.newerBtn.addEventListener('click', () => this.loadNewer());
    o.jumpBtn.addEventListener('click', () => {
      this.o.jumpBtn.hidden = true;
      if (this.s && !this.s.reachedEnd) {
        this.o.onJumpToLatest();
      } else {
        this.scrollToBottom(!prefersReducedMotion());
      }
      // Keep keyboard users in the conversation.
      this.logEl.focus({ preventScroll: true });
    });
    o.unreadBtn.addEventListener('click', () => this.jumpToDivider());

    // Stay at the bottom when the list grows or the log shrinks (composer grows).
    if ('ResizeObserver' in window) {
      const ro = new ResizeObserver(() => {
        if (this.s && this.s.pinned) this.scrollToBottom(false);
      });
      ro.observe(this.logEl);
      ro.observe(this.listEl);
    }

    // Day labels ("Today") go stale at midnight.
    setInterval(() => {
      const k = dayKey(new Date());
      if (k !== this.lastDayKey) {
        this.lastDayKey = k;
        for (const s of this.rooms.values()) this.refreshAll(s);
      }
    }, 60_000);
  }

  /** Forget every room (sign-out). */
  resetAll(me) {
    this.actions.cancelEdit({ all: true });
    this.me = me;
    this.rooms.clear();
    this.s = null;
    this.listEl.replaceChildren();
    this.syncLogTab();
    this.o.jumpBtn.hidden = true;
    this.o.unreadBtn.hidden = true;
    this.o.startEl.hidden = true;
    this.o.loaderEl.hidden = true;
    this.o.newerEl.hidden = true;
  }

  setMe(name) { this.me = name; }

  isOwn(user) { return Boolean(this.me) && String(user).toLowerCase() === this.me.toLowerCase(); }

  /** The RoomLog of `room`, created when `create`. */
  state(room, create = false) {
    let s = this.rooms.get(room);
    if (!s && create) {
      s = new RoomLog(room);
      this.rooms.set(room, s);
    }
    return s || null;
  }

  /** A room was renamed: its RoomLog follows. */
  rename(oldName, newName) {
    const s = this.rooms.get(oldName);
    if (!s) return;
    this.rooms.delete(oldName);
    s.room = newName;
    for (const row of s.confirmed.concat(s.pending)) row.msg.room = newName;
    this.rooms.set(newName, s);
  }

  /** Forget a room (left it). */
  drop(room) {
    const s = this.rooms.get(room);
    if (!s) return;
    this.rooms.delete(room);
    if (this.s === s) {
      this.s = null;
      this.listEl.replaceChildren();
      this.syncLogTab();
    }
  }

  get current() { return this.s; }
  get room() { return this.s ? this.s.room : ''; }

  /**
   * Show `room` in the log (creating its RoomLog), keeping the scroll
   * position of the room shown before.
   * @param {string} room
   * @param {string} title  how the room is named to people ("#general", "alice, bob")
   */
  show(room, title) {
    const s = this.state(room, true);
    // An editor left open would still be there, half written, on coming back.
    if (s !== this.s) this.actions.cancelEdit();
    if (this.s) {
      this.s.scrollTop = this.logEl.scrollTop;
      this.clearTarget(this.s);
    }
    this.actions.hide();
    this.openInner(null);
    s.title = title;
    this.s = s;
    this.logEl.setAttribute('aria-busy', 'true');
    this.listEl.replaceChildren(s.el);
    this.syncLogTab();
    this.logEl.setAttribute('aria-label', `${title} conversation`);
    for (const el of this.o.startEl.querySelectorAll('.log-start-room')) setText(el, title);
    this.o.jumpBtn.hidden = true;
    this.updateLoaders();
    if (s.pinned) this.scrollToBottom(false);
    else this.logEl.scrollTop = s.scrollTop;
    this.updateUnreadJump();
    this.updateLatestJump();
    // Announce only what arrives from now on, not the swap itself.
    requestAnimationFrame(() => {
      if (this.s === s) this.logEl.setAttribute('aria-busy', 'false');
    });
    return s;
  }

  isShown(s) { return Boolean(s) && this.s === s; }

  updateLoaders() {
    const s = this.s;
    this.syncLogTab();
    if (!s) return;
    const start = s.loaded && s.reachedStart;
    this.o.startEl.hidden = !start;
    this.o.loaderEl.hidden = !s.loaded || start;
    busyButton(this.o.loadBtn, s.loadingOlder);
    this.o.loadingEl.hidden = !s.loadingOlder;
    this.o.newerEl.hidden = !s.loaded || s.reachedEnd;
    busyButton(this.o.newerBtn, s.loadingNewer);
    this.o.newerLoadingEl.hidden = !s.loadingNewer;
  }

  // ---- loading -------------------------------------------------------------

  /**
   * A page of history for `s` (oldest first): the newest page, or a window
   * around a message. Merged with what is there already.
   */
  setHistory(s, messages, { reachedStart, reachedEnd = true }) {
    const shown = this.isShown(s);
    if (shown) this.logEl.setAttribute('aria-busy', 'true');
    for (const m of messages) this.insertMessage(s, m);
    this.reapplyChanges(s, messages);
    s.loaded = true;
    s.reachedStart = reachedStart;
    s.reachedEnd = reachedEnd;
    if (reachedEnd) this.flushBuffer(s);
    this.refreshAll(s);
    this.ensureRoving(s);
    if (shown) {
      this.updateLoaders();
      this.updateLatestJump();
      this.logEl.setAttribute('aria-busy', 'false');
    }
  }

  /** After the first page: scroll to the bottom and fill the viewport. */
  settle() {
    if (!this.s) return;
    this.s.pinned = true;
    this.scrollToBottom(false);
    this.fillViewport();
    this.o.onSeen();
  }

  onScroll() {
    const s = this.s;
    if (!s) return;
    const wasPinned = s.pinned;
    s.pinned = s.reachedEnd && this.distanceFromBottom() < PIN_THRESHOLD_PX;
    if (s.pinned && !wasPinned) this.o.jumpBtn.hidden = true;
    // Opening a room at its divider does not by itself page in older history; scrolling up does.
    const quiet = this.quietScroll;
    this.quietScroll = false;
    if (!quiet && this.logEl.scrollTop < LOAD_THRESHOLD_PX && !s.olderFailed) this.loadOlder();
    if (!s.reachedEnd && this.distanceFromBottom() < LOAD_THRESHOLD_PX && !s.newerFailed) this.loadNewer();
    this.updateUnreadJump();
    this.updateLatestJump();
    this.o.onSeen();
  }

  /**
   * The button at the bottom of the log: "New messages ↓" (others wrote while the reader was
   * up in the history) or "Jump to latest ↓" (the reader jumped into the past). Both bring
   * the newest messages (loading them when needed); "New messages" says more, so it stays.
   */
  showJump(kind) {
    const btn = this.o.jumpBtn;
    if (kind === 'latest' && !btn.hidden && btn.dataset.kind === 'new') return;
    btn.dataset.kind = kind;
    const label = btn.querySelector('.jump-label') || btn;
    setText(label, kind === 'new' ? 'New messages' : 'Jump to latest');
    btn.hidden = false;
  }

  /**
   * After a jump into the past (a reply's quote, a search result, a link to a message) or
   * while the newest messages are not loaded, "Jump to latest" is offered; it goes once the
   * newest message is loaded and in view.
   */
  updateLatestJump() {
    const s = this.s;
    const btn = this.o.jumpBtn;
    if (!s || !s.loaded) return;
    if (this.newestVisible()) {
      s.jumped = false;
      if (!btn.hidden && btn.dataset.kind === 'latest') {
        if (btn.contains(document.activeElement)) this.logEl.focus({ preventScroll: true });
        btn.hidden = true;
      }
    } else if (!s.reachedEnd || s.jumped) {
      this.showJump('latest');
    }
  }

  distanceFromBottom() {
    const el = this.logEl;
    return el.scrollHeight - el.scrollTop - el.clientHeight;
  }

  /** Is the newest message of the shown room on screen? */
  newestVisible() {
    const s = this.s;
    if (!s || !s.loaded || !s.reachedEnd) return false;
    if (s.pinned || this.distanceFromBottom() < PIN_THRESHOLD_PX) return true;
    const last = s.confirmed[s.confirmed.length - 1];
    if (!last) return true;
    const r = last.el.getBoundingClientRect();
    const box = this.logEl.getBoundingClientRect();
    return r.bottom <= box.bottom + 2 && r.bottom >= box.top;
  }

  /** Keep loading older pages until the log can scroll (or the start is reached). */
  fillViewport() {
    const s = this.s;
    if (s && !s.reachedStart && this.logEl.scrollHeight <= this.logEl.clientHeight + 8) this.loadOlder();
  }

  async loadOlder() {
    const s = this.s;
    if (!s || !s.loaded || s.loadingOlder || s.reachedStart || s.confirmed.length === 0) return;
    s.loadingOlder = true;
    s.olderFailed = false;
    this.updateLoaders();
    const before = s.oldestId;
    const epoch = s.epoch;
    let page = null;
    try {
      page = await this.o.onLoadOlder(s.room, before);
    } catch {
      page = null;
    }
    // The history was replaced meanwhile (a jump): this page belongs to none of it.
    if (this.rooms.get(s.room) !== s || s.epoch !== epoch) return;
    s.loadingOlder = false;
    if (page == null) {
      // Failed: leave the button so the reader can try again.
      s.olderFailed = true;
      setText(this.o.loadBtn, 'Couldn’t load older messages. Try again');
      if (this.isShown(s)) this.updateLoaders();
      return;
    }
    setText(this.o.loadBtn, 'Load older messages');
    this.prependOlder(s, page.messages, page.reachedStart);
    if (this.isShown(s)) this.fillViewport();
  }

  prependOlder(s, messages, reachedStart) {
    const shown = this.isShown(s);
    const el = this.logEl;
    const heightBefore = el.scrollHeight;
    const topBefore = el.scrollTop;
    if (shown) el.setAttribute('aria-busy', 'true');
    for (const m of messages) this.insertMessage(s, m);
    this.reapplyChanges(s, messages);
    this.refreshAll(s);
    this.ensureRoving(s);
    s.reachedStart = reachedStart;
    if (!shown) return;
    this.updateLoaders();
    el.setAttribute('aria-busy', 'false');
    if (!s.pinned) el.scrollTop = topBefore + (el.scrollHeight - heightBefore);
    else this.scrollToBottom(false);
  }

  async loadNewer() {
    const s = this.s;
    if (!s || !s.loaded || s.loadingNewer || s.reachedEnd || s.confirmed.length === 0) return;
    s.loadingNewer = true;
    s.newerFailed = false;
    this.updateLoaders();
    const epoch = s.epoch;
    let page = null;
    try {
      page = await this.o.onLoadNewer(s.room, s.windowNewestId);
    } catch {
      page = null;
    }
    if (this.rooms.get(s.room) !== s || s.epoch !== epoch) return;
    s.loadingNewer = false;
    if (page == null) {
      s.newerFailed = true;
      setText(this.o.newerBtn, 'Couldn’t load newer messages. Try again');
      if (this.isShown(s)) this.updateLoaders();
      return;
    }
    setText(this.o.newerBtn, 'Load newer messages');
    const shown = this.isShown(s);
    const top = this.logEl.scrollTop;
    if (shown) this.logEl.setAttribute('aria-busy', 'true');
    for (const m of page.messages) this.insertMessage(s, m);
    this.reapplyChanges(s, page.messages);
    if (page.reachedEnd) {
      s.reachedEnd = true;
      this.flushBuffer(s);
    }
    this.refreshAll(s);
    this.ensureRoving(s);
    if (!shown) return;
    this.updateLoaders();
    this.logEl.setAttribute('aria-busy', 'false');
    this.logEl.scrollTop = top; // content grew below: keep the reader where they were
    this.o.onSeen();
  }

  /** Live messages held back while the window did not reach the newest one. */
  flushBuffer(s) {
    const held = s.buffer;
    s.buffer = [];
    for (const m of held) this.insertMessage(s, m, true);
  }

  // ---- live messages ------------------------------------------------------------

  /**
   * Add live (or replayed) messages of room `s`. Returns the number of
   * messages that were new to the list.
   */
  addMessages(s, messages) {
    if (!s.reachedEnd) {
      // A window into the past is shown: hold these until the reader pages down to them.
      s.buffer.push(...messages);
      const own = messages.filter((m) => m.nonce && this.isOwn(m.user) && s.byNonce.has(m.nonce));
      for (const m of own) this.insertMessage(s, m, true);
      if (this.isShown(s) && messages.some((m) => !this.isOwn(m.user))) this.showJump('new');
      return 0;
    }
    let added = 0;
    let fromOthers = false;
    let own = false;
    for (const m of messages) {
      const result = this.insertMessage(s, m, true);
      if (!result) continue;
      added++;
      if (result === 'confirmed-own') continue;
      if (this.isOwn(m.user)) own = true;
      else fromOthers = true;
    }
    if (added) this.ensureRoving(s);
    if (!added || !this.isShown(s)) return added;
    if (s.pinned || own) this.queueScrollToBottom();
    else if (fromOthers) this.showJump('new');
    this.o.onSeen();
    return added;
  }

  /**
   * Insert one message. Returns false when it was already shown,
   * 'confirmed-own' when it acknowledged a pending message, true otherwise.
   */
  insertMessage(s, m, refresh = false) {
    if (!m || typeof m.id !== 'number') return false;
    const pendingRow = m.nonce && this.isOwn(m.user) ? s.byNonce.get(m.nonce) : null;

    const shownRow = s.byId.get(m.id);
    if (shownRow) {
      // Already shown; a duplicate echo can still settle a pending copy, and a
      // message object carries the message's current state.
      if (pendingRow) this.removeRow(s, pendingRow);
      this.setState(s, shownRow, m);
      return false;
    }

    let row;
    let result = true;
    if (pendingRow) {
      row = pendingRow;
      removeFrom(s.pending, row);
      s.byNonce.delete(m.nonce);
      row.msg = m;
      row.id = m.id;
      row.date = parseTs(m.ts);
      row.pending = false;
      row.failed = false;
      this.renderTime(row);
      this.setStatus(row, null);
      this.renderMessage(row);
      row.el.dataset.id = String(m.id);
      row.el.tabIndex = -1;
      result = 'confirmed-own';
    } else {
      row = this.buildRow(m, false);
    }

    const index = sortedIndex(s.confirmed, m.id);
    const next = s.confirmed[index] || s.pending[0] || null;
    placeRow(s, row, next);
    s.confirmed.splice(index, 0, row);
    s.byId.set(m.id, row);

    if (refresh) {
      this.refreshRow(s, row);
      if (next) this.refreshRow(s, next);
      // The pending row may have left a hole where it was.
      if (pendingRow) for (const p of s.pending.slice(0, 1)) this.refreshRow(s, p);
    }
    return result;
  }

  // ---- system lines -----------------------------------------------------------

  /**
   * A compact line about the room itself ("carol joined", "Topic changed to …") after the
   * newest message. Not a message: no toolbar, no tab stop, never unread. Live only: the
   * history does not carry these.
   */
  addNote(s, text, { user = null, verb = '' } = {}) {
    const now = new Date();
    const el = h('div', { class: 'sys-line', dataset: user ? { user, verb } : null },
      h('span', { class: 'sys-line-text', dir: 'auto' }, user ? this.noteText(user, verb) : text),
      h('span', { class: 'visually-hidden' }, ', '),
      h('time', { class: 'sys-line-time', datetime: now.toISOString(), title: formatFull(now) }, formatTime(now)));
    s.el.insertBefore(el, s.pending[0] ? s.pending[0].dayEl : null);
    s.notes.push(el);
    if (this.isShown(s) && s.pinned) this.queueScrollToBottom();
    return el;
  }

  /** "Ada Lovelace joined": what a line about `user` says (their display name). */
  noteText(user, verb) {
    const name = this.o.profiles ? this.o.profiles.name(user) : user;
    return `${name} ${verb}`;
  }

  // ---- pending messages -----------------------------------------------------

  /**
   * `reply_to`, when given, is the `{id, user, excerpt}` of the message answered;
   * `attachments` the upload objects sent with it.
   */
  addPending(s, { nonce, body, room, user, reply_to = null, attachments = null }) {
    const msg = { id: null, room, user, body, ts: new Date().toISOString(), nonce };
    if (reply_to) msg.reply_to = reply_to;
    if (Array.isArray(attachments) && attachments.length) msg.attachments = attachments;
    const row = this.buildRow(msg, true);
    row.nonce = nonce;
    s.pending.push(row);
    s.byNonce.set(nonce, row);
    placeRow(s, row, null);
    this.refreshRow(s, row);
    s.pinned = true;
    if (this.isShown(s)) {
      this.o.jumpBtn.hidden = true;
      this.queueScrollToBottom();
    }
    return row;
  }

  /** The pending message `nonce` and the RoomLog holding it: `{ s, row }`, or null. */
  pendingRow(nonce) {
    for (const s of this.rooms.values()) {
      const row = s.byNonce.get(nonce);
      if (row) return { s, row };
    }
    return null;
  }

  /**
   * Pending messages of every room, in the order written: those still to be sent, and with
   * `withFailed` also those "Not sent" (marked `failed`, with their `reason`).
   */
  unsent(withFailed = false) {
    const out = [];
    for (const s of this.rooms.values()) {
      for (const r of s.pending) {
        if (!r.failed) out.push(r.msg);
        else if (withFailed) out.push({ ...r.msg, failed: true, reason: r.failReason || '' });
      }
    }
    return out;
  }

  markFailed(nonce, reason) {
    const { s, row } = this.pendingRow(nonce) || {};
    if (!row) return false;
    row.failed = true;
    row.failReason = reason;
    row.el.classList.add('failed');
    row.el.classList.remove('pending');
    this.setStatus(row, 'failed', reason);
    this.refreshRow(s, row);
    return true;
  }

  /** Send pending message `nonce` without its quote (what it answered is gone). Whether it had one. */
  dropQuote(nonce) {
    const { row } = this.pendingRow(nonce) || {};
    if (!row || !row.msg.reply_to) return false;
    const { reply_to: _gone, ...rest } = row.msg;
    row.msg = rest;
    this.renderMessage(row);
    return true;
  }

  /**
   * Pending message `nonce` is unsent again: being sent (`status` 'pending') or waiting for
   * the rate to allow it ('waiting'). Its message, or null when it is not there any more.
   */
  markRetrying(nonce, status = 'pending') {
    const { row } = this.pendingRow(nonce) || {};
    if (!row) return null;
    row.failed = false;
    row.el.classList.remove('failed');
    row.el.classList.add('pending');
    this.setStatus(row, status);
    return row.msg;
  }

  discard(nonce) {
    const { s, row } = this.pendingRow(nonce) || {};
    if (row) this.removeRow(s, row);
  }

  removeRow(s, row) {
    const seq = s.confirmed.concat(s.pending);
    const i = seq.indexOf(row);
    const next = i >= 0 ? seq[i + 1] : null;
    if (row.nonce) s.byNonce.delete(row.nonce);
    removeFrom(s.pending, row);
    if (row.id != null && s.byId.get(row.id) === row) {
      s.byId.delete(row.id);
      removeFrom(s.confirmed, row);
    }
    this.actions.forget(row);
    unplaceRow(row);
    if (next) this.refreshRow(s, next);
    if (s.focusRow === row) this.ensureRoving(s);
  }

  // ---- divider and highlight ---------------------------------------------------

  /**
   * Put the "New messages" divider before the first message after `lastRead`
   * that someone else wrote (none when `lastRead` is null). Returns its row.
   */
  markUnread(s, lastRead) {
    const old = s.dividerRow;
    if (old) {
      old.newEl.hidden = true;
      s.dividerRow = null;
      this.refreshRow(s, old);
    }
    if (lastRead == null) {
      if (this.isShown(s)) this.updateUnreadJump();
      return null;
    }
    // Only where that is the first unread message: the history shown reaches back to the last
    // message read (with more unread messages than a page, the first of them is not here).
    const reachesBack = s.reachedStart || (s.confirmed.length > 0 && s.oldestId <= lastRead);
    const row = reachesBack ? s.confirmed.find((r) => r.id > lastRead && !r.own) : null;
    if (row) {
      row.newEl.hidden = false;
      s.dividerRow = row;
      this.refreshRow(s, row);
    }
    if (this.isShown(s)) this.updateUnreadJump();
    return row || null;
  }

  /** "Jump to first unread" is there while the "New messages" divider is out of view. */
  updateUnreadJump() {
    const btn = this.o.unreadBtn;
    const s = this.s;
    const row = s && s.dividerRow;
    let out = false;
    if (row && row.el.isConnected) {
      const r = row.el.getBoundingClientRect();
      const box = this.logEl.getBoundingClientRect();
      out = r.height > 0 && (r.top + 24 < box.top || r.top > box.bottom - 24);
    }
    if (btn.hidden === !out) return;
    if (!out && btn.contains(document.activeElement)) this.logEl.focus({ preventScroll: true });
    btn.hidden = !out;
  }

  /** Scroll back to the "New messages" divider. */
  jumpToDivider() {
    const s = this.s;
    const row = s && s.dividerRow;
    if (!row || !row.el.isConnected) return;
    this.scrollIntoLog(row.el, 'start');
    s.pinned = s.reachedEnd && this.distanceFromBottom() < PIN_THRESHOLD_PX;
    if (!s.pinned && !this.newestVisible()) this.showJump('new');
    this.actions.focusQuietly(row.el);
    this.updateUnreadJump();
  }

  /** After opening a room: show the divider near the top when it is off screen. */
  revealDivider() {
    const s = this.s;
    const row = s && s.dividerRow;
    if (!row) return;
    const r = row.el.getBoundingClientRect();
    const box = this.logEl.getBoundingClientRect();
    if (r.top >= box.top && r.top < box.bottom - 8) return; // already on screen
    this.quietScroll = true;
    this.logEl.scrollTop += r.top - box.top - 8;
    s.pinned = false;
    this.showJump('new');
    this.updateUnreadJump();
  }

  /** Scroll to message `id` of the shown room and highlight it. */
  highlight(id) {
    const s = this.s;
    const row = s && s.byId.get(id);
    if (!row) return false;
    this.clearTarget(s);
    s.targetRow = row;
    row.el.classList.add('is-target');
    row.el.dataset.target = 'true';
    s.pinned = false;
    this.scrollIntoLog(row.el, 'center');
    s.pinned = s.reachedEnd && this.distanceFromBottom() < PIN_THRESHOLD_PX;
    s.jumped = true;
    this.updateLatestJump();
    return true;
  }

  /**
   * Scroll the log (and nothing else: not the page, not the app shell, as
   * `Element.scrollIntoView` would) so that `el` is in view: in the middle
   * (`'center'`), at the top (`'start'`) or just inside the nearest edge (`'nearest'`).
   */
  scrollIntoLog(el, block = 'nearest') {
    const log = this.logEl;
    const r = el.getBoundingClientRect();
    const box = log.getBoundingClientRect();
    let delta = 0;
    if (block === 'center') {
      delta = r.top - box.top - Math.max(0, (box.height - r.height) / 2);
    } else if (block === 'start') {
      delta = r.top - box.top - 8;
    } else if (r.top < box.top) {
      delta = r.top - box.top - 8;
    } else if (r.bottom > box.bottom) {
      delta = Math.min(r.bottom - box.bottom + 8, r.top - box.top - 8);
    }
    if (delta) log.scrollTop += delta;
  }

  clearTarget(s) {
    if (!s.targetRow) return;
    s.targetRow.el.classList.remove('is-target');
    delete s.targetRow.el.dataset.target;
    s.targetRow = null;
  }

  // ---- rendering -----------------------------------------------------------------

  buildRow(msg, pending) {
    const own = this.isOwn(msg.user);
    const date = parseTs(msg.ts);
    const row = {
      id: msg.id, msg, date, pending, failed: false, nonce: msg.nonce || null,
      own, cont: null, dayText: null, bodyKey: null, replyKey: null, editor: null,
    };

    row.newEl = h('div', { class: 'new-sep', hidden: true }, h('span', { class: 'new-sep-label' }, 'New messages'));
    row.dayEl = h('div', { class: 'day-sep', hidden: true }, h('span', { class: 'day-sep-label' }));
    row.timeEl = h('time', { class: 'msg-time' });
    const profiles = this.o.profiles;
    row.headEl = h('div', { class: 'msg-head' },
      h('span', { class: 'msg-author', dir: 'auto', dataset: { author: msg.user }, title: `@${msg.user}` },
        profiles ? profiles.name(msg.user) : msg.user),
      h('span', { class: 'visually-hidden' }, ', '),
      row.timeEl);
    row.bubbleEl = h('div', { class: 'msg-bubble', id: `msg-text-${++textIds}` });
    row.reactionsEl = h('div', { class: 'msg-reactions', role: 'group', 'aria-label': 'Reactions', hidden: true });
    row.statusEl = h('div', { class: 'msg-status', hidden: true });
    row.contentEl = h('div', { class: 'msg-content' }, row.headEl, row.bubbleEl, row.reactionsEl, row.statusEl);

    // A message is an article named by who wrote it and when ("alice, 7:09 AM"), described
    // by its text: what a screen reader says when the message takes the focus.
    // Its day line ("Today") comes before it in the log, outside it: not part of the message.
    row.el = h('div', {
      class: `msg${own ? ' own' : ''}${pending ? ' pending' : ''}`,
      role: 'article',
      'aria-describedby': row.bubbleEl.id,
      dataset: msg.id != null ? { id: String(msg.id) } : {},
    },
    row.newEl,
    h('div', { class: 'msg-row' },
      own ? null : this.authorAvatar(msg.user),
      row.contentEl));
    // Confirmed messages can take focus (the log's roving tab stop, see actions.js).
    if (msg.id != null) row.el.tabIndex = -1;
    this.rowEls.set(row.el, row);

    this.renderMessage(row);
    this.renderTime(row);
    if (pending) this.setStatus(row, 'pending');
    return row;
  }

  /** `user`'s avatar, with their picture when they set one. */
  authorAvatar(user) {
    const el = avatar(user);
    if (this.o.profiles) paintAvatar(el, user, this.o.profiles);
    return el;
  }

  /** Show `username`'s (every author's, when null) current display name and picture. */
  refreshAuthors(username) {
    const want = username == null ? null : String(username).toLowerCase();
    const all = [];
    for (const s of this.rooms.values()) {
      all.push(...s.el.querySelectorAll('[data-author]'));
      for (const line of s.notes) {
        const user = line.dataset.user;
        if (!user || (want != null && user.toLowerCase() !== want)) continue;
        setText(line.querySelector('.sys-line-text'), this.noteText(user, line.dataset.verb || ''));
      }
    }
    for (const el of all) {
      const user = el.dataset.author;
      if (want != null && user.toLowerCase() !== want) continue;
      if (el.classList.contains('msg-author')) {
        setText(el, this.o.profiles.name(user));
        const row = this.rowEls.get(el.closest('.msg'));
        if (row) this.labelRow(row);
      } else if (el.classList.contains('avatar')) paintAvatar(el, user, this.o.profiles);
    }
  }

  /** The row of a message element of the shown room. */
  rowOf(el) {
    const row = this.rowEls.get(el);
    return row && this.s && (this.s.byId.get(row.id) === row || this.s.pending.includes(row)) ? row : null;
  }

  /** The bubble (quote, text, "(edited)"), the reactions and the mention mark, from row.msg. */
  renderMessage(row) {
    const m = row.msg;
    const deleted = Boolean(m.deleted);
    row.el.classList.toggle('is-deleted', deleted);
    row.el.classList.toggle('mentions-me', !deleted && !row.own && mentions(m.body, this.me));
    const files = !deleted && Array.isArray(m.attachments) ? m.attachments : [];
    const preview = !deleted && m.preview && typeof m.preview === 'object' ? m.preview : null;
    const previewKey = preview ? `${preview.url}\u0000${preview.title}\u0000${preview.image_url || ''}` : '';
    const bodyKey = deleted ? '' : `${m.edited_ts || ''}\u0000${m.body}\u0000${files.map((a) => a.id).join(',')}\u0000${previewKey}`;
    const reply = !deleted && m.reply_to && typeof m.reply_to === 'object' ? m.reply_to : null;
    const replyKey = reply ? `${reply.id}\u0000${reply.user}\u0000${reply.excerpt}\u0000${Boolean(reply.deleted)}` : '';
    if (bodyKey !== row.bodyKey || replyKey !== row.replyKey) {
      row.bodyKey = bodyKey;
      row.replyKey = replyKey;
      if (deleted) {
        row.bubbleEl.replaceChildren(h('p', { class: 'msg-deleted' }, DELETED_TEXT));
      } else {
        const parts = [];
        if (reply) {
          const s = this.rooms.get(m.room);
          const original = s && s.byId.get(reply.id);
          parts.push(quoteOf(reply, original ? original.msg : null));
        }
        const action = actionText(m.body);
        if (m.body || !files.length) {
          // Each paragraph takes the direction of its own text (markdown.js), the message as a
          // whole that of its first words: Hebrew or Arabic read right to left.
          parts.push(action != null ? actionBody(m.user, action, this.me) : autoDir(h('div', { class: 'msg-body' }, renderMarkdown(m.body, this.me))));
        }
        if (files.length) parts.push(attachmentsView(files, (a) => this.o.onOpenImage && this.o.onOpenImage(a)));
        if (preview) {
          const remove = row.own && !row.pending && this.o.onRemovePreview ? () => this.o.onRemovePreview(row) : null;
          const card = linkPreviewView(preview, remove);
          if (card) parts.push(card);
        }
        if (m.edited_ts) {
          const when = parseTs(m.edited_ts);
          parts.push(h('span', { class: 'msg-edited', title: `Edited ${formatFull(when)}` }, '(edited)'));
        }
        row.bubbleEl.replaceChildren(...parts);
      }
    }
    this.renderReactions(row);
  }

  /**
   * The reaction chips, updated in place (a chip keeps its element, and so the focus, while
   * its count changes), in the order the emoji were first used.
   */
  renderReactions(row) {
    const list = row.msg.deleted || !Array.isArray(row.msg.reactions) ? [] : row.msg.reactions;
    const box = row.reactionsEl;
    const old = new Map();
    for (const chip of Array.from(box.children)) old.set(chip.dataset.emoji, chip);
    const chips = list.map((r) => {
      const users = Array.isArray(r.users) ? r.users : [];
      const count = users.length || Number(r.count) || 0;
      const mine = users.some((u) => this.isOwn(u));
      let chip = old.get(r.emoji);
      old.delete(r.emoji);
      if (!chip) {
        chip = h('button', { type: 'button', class: 'reaction', dataset: { emoji: r.emoji } },
          h('span', { class: 'reaction-emoji', 'aria-hidden': 'true' }, r.emoji),
          h('span', { class: 'reaction-count', 'aria-hidden': 'true' }));
      }
      chip.setAttribute('aria-pressed', mine ? 'true' : 'false');
      chip.setAttribute('aria-label', `${r.emoji} ${count}`);
      chip.title = users.join(', ');
      setText(chip.lastChild, String(count));
      return chip;
    });
    let lostFocus = false;
    for (const chip of old.values()) {
      if (chip.contains(document.activeElement)) lostFocus = true;
      chip.remove();
    }
    chips.forEach((chip, i) => {
      if (box.children[i] !== chip) box.insertBefore(chip, box.children[i] || null);
    });
    box.hidden = chips.length === 0;
    this.syncInner(row);
    if (lostFocus && row.el.isConnected) (chips[0] || row.el).focus({ preventScroll: true });
  }

  // ---- changes to messages ----------------------------------------------------------

  /** A message object for a row already shown: take over its current state. */
  setState(s, row, m) {
    if (row.pending || !m) return;
    const prev = row.msg;
    // A copy fetched before a change arrived live must not undo it: deletions are final,
    // and an older edit does not replace a newer one.
    if (prev.deleted && !m.deleted) return;
    if (!m.deleted && prev.edited_ts && (!m.edited_ts || parseTs(m.edited_ts) < parseTs(prev.edited_ts))) {
      m = { ...m, body: prev.body, edited_ts: prev.edited_ts };
    }
    row.msg = m;
    if (m.deleted && !prev.deleted) this.actions.forget(row);
    else if (row.editor && !m.deleted && m.body !== prev.body) this.actions.changedElsewhere(row);
    this.renderMessage(row);
    if (row.editor && m.deleted) this.actions.closeEditor(row, false);
  }

  /**
   * Apply `update` (a function from the old message object to the new one) to message `id`
   * of `s`, whether it is shown or held back. Returns the message as it was, or null when
   * `s` does not have it.
   */
  change(s, id, update) {
    let before = null;
    const row = s.byId.get(id);
    if (row) {
      before = row.msg;
      this.setState(s, row, update(row.msg));
    }
    s.buffer.forEach((m, i) => {
      if (m && m.id === id) {
        if (!before) before = m;
        s.buffer[i] = update(m);
      }
    });
    return before;
  }

  /**
   * Keep change frame `f` (applied with `apply`) for a while: a page of history fetched before
   * it was made, arriving after it, would otherwise undo it (or miss it, for a message not
   * shown yet).
   */
  remember(s, f, apply) {
    if (this.reapplying) return;
    s.changes.push({ f, apply });
    if (s.changes.length > RECENT_CHANGES) s.changes.splice(0, s.changes.length - RECENT_CHANGES);
  }

  /** Apply again, in order, the recent changes of `messages` (just read over HTTP). */
  reapplyChanges(s, messages) {
    if (!s.changes.length || !messages.length) return;
    // The page's messages, and those its replies quote.
    const ids = new Set();
    for (const m of messages) {
      if (!m) continue;
      ids.add(m.id);
      if (m.reply_to && typeof m.reply_to.id === 'number') ids.add(m.reply_to.id);
    }
    this.reapplying = true;
    try {
      for (const { f, apply } of s.changes) if (ids.has(f.id)) apply.call(this, s, f);
    } finally {
      this.reapplying = false;
    }
  }

  /** An `edited` frame. Returns the row when it is shown. */
  applyEdited(s, f) {
    this.remember(s, f, this.applyEdited);
    // A replayed edit of a message deleted since carries no text; the message is a tombstone
    // by then (or its `deleted` frame follows), which an edit leaves alone. An empty body is
    // otherwise a caption edited away from a message with files.
    if (typeof f.body !== 'string') return null;
    const before = this.change(s, f.id, (m) => (m.deleted ? m : { ...m, body: f.body, edited_ts: f.edited_ts || m.edited_ts }));
    // Replies quote it whether or not the message itself is loaded here.
    if (!before || !before.deleted) this.updateQuotes(s, f.id, excerpt(f.body));
    return s.byId.get(f.id) || null;
  }

  /** A `deleted` frame. Returns the message as it was before (null when not known). */
  applyDeleted(s, f) {
    this.remember(s, f, this.applyDeleted);
    const before = this.change(s, f.id, (m) => ({ id: m.id, room: m.room, user: m.user, ts: m.ts, deleted: true, body: '' }));
    this.updateQuotes(s, f.id, '', true);
    return before;
  }

  /** A `preview` frame: the link preview arrived, or (`preview: null`) was removed. */
  applyPreview(s, f) {
    this.remember(s, f, this.applyPreview);
    const p = f.preview && typeof f.preview === 'object' ? f.preview : null;
    this.change(s, f.id, (m) => {
      if (m.deleted) return m;
      const next = { ...m };
      if (p) next.preview = p;
      else delete next.preview;
      return next;
    });
  }

  /** A `reaction` frame: `user` reacts with `emoji` (or not) after it, whatever was before. */
  applyReaction(s, f) {
    if (typeof f.emoji !== 'string' || !f.emoji) return;
    this.remember(s, f, this.applyReaction);
    this.change(s, f.id, (m) => (m.deleted ? m : { ...m, reactions: withReaction(m.reactions, f.emoji, f.user, Boolean(f.on)) }));
  }

  /** The quotes of the replies to message `id` follow its text (`''` once it is `deleted`). */
  updateQuotes(s, id, text, deleted = false) {
    const quote = (r) => (deleted ? { ...r, excerpt: text, deleted } : { ...r, excerpt: text });
    const update = (m) => (m.reply_to && m.reply_to.id === id ? { ...m, reply_to: quote(m.reply_to) } : m);
    for (const row of s.confirmed.concat(s.pending)) {
      if (!row.msg.reply_to || row.msg.reply_to.id !== id) continue;
      row.msg = update(row.msg);
      this.renderMessage(row);
    }
    s.buffer = s.buffer.map((m) => (m ? update(m) : m));
  }

  // ---- keyboard focus ---------------------------------------------------------------

  /** Make `row` the log's tab stop (`byUser`: the reader put focus there). */
  setRoving(s, row, byUser = false) {
    if (byUser) s.followNewest = row === s.confirmed[s.confirmed.length - 1];
    if (s.focusRow !== row) {
      if (s.focusRow) s.focusRow.el.tabIndex = -1;
      s.focusRow = row;
      if (row) row.el.tabIndex = 0;
    }
    if (this.s === s) this.syncLogTab();
  }

  /**
   * One tab stop for the conversation: while a message of the shown room holds it, the log
   * itself is out of the Tab order (it still takes the focus from the page, e.g. after a jump);
   * with no message to hold it (an empty room) the log is the stop, so the keyboard can still
   * reach and scroll it.
   */
  syncLogTab() {
    const row = this.s ? this.s.focusRow : null;
    this.logEl.tabIndex = row && row.el.isConnected ? -1 : 0;
  }

  /** Keep a tab stop on a message that is there: the newest, or the one chosen last. */
  ensureRoving(s) {
    let row = s.focusRow;
    if (row && s.byId.get(row.id) !== row) row = null;
    if (!row || s.followNewest) row = s.confirmed[s.confirmed.length - 1] || null;
    this.setRoving(s, row);
  }

  renderTime(row) {
    const iso = row.date.toISOString();
    const full = formatFull(row.date);
    row.timeEl.setAttribute('datetime', iso);
    row.timeEl.title = full;
    setText(row.timeEl, formatTime(row.date));
    row.bubbleEl.title = full;
    this.labelRow(row);
  }

  /** The row's accessible name: "alice, 7:09 AM" (the author's display name). */
  labelRow(row) {
    const profiles = this.o.profiles;
    const name = profiles ? profiles.name(row.msg.user) : row.msg.user;
    row.el.setAttribute('aria-label', `${name}, ${formatTime(row.date)}`);
  }

  // ---- what is inside a message, in the Tab order or not -------------------------------------

  /** `row` (null: none) holds the focus: its contents join the Tab order, the last one's leave. */
  openInner(row) {
    if (row && (row.id == null || !row.el.isConnected)) row = null;
    if (this.innerRow === row) return;
    const old = this.innerRow;
    this.innerRow = row;
    if (old) this.syncInner(old);
    if (row) this.syncInner(row);
  }

  /**
   * Take what can be focused inside a confirmed message out of the Tab order (tabindex -1: the
   * mouse and touch still reach it), unless the message holds the focus. Pending messages keep
   * theirs ("Retry", "Discard" and the toolbar are never touched).
   */
  syncInner(row) {
    if (row.id == null) return;
    const open = this.innerRow === row;
    for (const box of [row.bubbleEl, row.reactionsEl]) {
      for (const el of box.querySelectorAll(INNER_FOCUSABLE)) {
        if (open) {
          if (!this.savedTabs.has(el)) continue;
          const own = this.savedTabs.get(el);
          this.savedTabs.delete(el);
          if (own == null) el.removeAttribute('tabindex');
          else el.setAttribute('tabindex', own);
        } else if (!this.savedTabs.has(el)) {
          this.savedTabs.set(el, el.getAttribute('tabindex'));
          el.tabIndex = -1;
        }
      }
    }
  }

  setStatus(row, kind, reason = '') {
    const el = row.statusEl;
    if (!kind) {
      el.hidden = true;
      el.replaceChildren();
      row.el.classList.remove('pending', 'failed');
      return;
    }
    el.hidden = false;
    const nonce = row.nonce;
    const discard = () => h('button', { type: 'button', class: 'link-btn', onclick: () => this.o.onDiscard(nonce) }, 'Discard');
    if (kind === 'pending') {
      el.replaceChildren(h('span', { class: 'msg-sending' }, 'sending…'));
      return;
    }
    if (kind === 'waiting') {
      // Still in the outbox, going by itself; the writer may take it back meanwhile.
      el.replaceChildren(
        h('span', { class: 'msg-sending' }, 'waiting: too many messages at once, sending soon…'),
        h('span', { class: 'msg-actions' }, discard()));
      return;
    }
    el.replaceChildren(
      h('span', { class: 'msg-failed-text' },
        h('span', { class: 'msg-failed-icon', 'aria-hidden': 'true' }, '!'),
        `Not sent${reason ? `: ${reason}` : ''}`),
      h('span', { class: 'msg-actions' },
        h('button', { type: 'button', class: 'link-btn', onclick: () => this.o.onRetry(nonce) }, 'Retry'),
        discard()),
    );
  }

  prevOf(s, row) {
    let i = s.confirmed.indexOf(row);
    if (i >= 0) return i > 0 ? s.confirmed[i - 1] : null;
    i = s.pending.indexOf(row);
    if (i > 0) return s.pending[i - 1];
    return s.confirmed.length ? s.confirmed[s.confirmed.length - 1] : null;
  }

  refreshAll(s) {
    let prev = null;
    for (const row of s.confirmed.concat(s.pending)) {
      this.applyGrouping(row, prev);
      prev = row;
    }
  }

  refreshRow(s, row) {
    this.applyGrouping(row, this.prevOf(s, row));
  }

  applyGrouping(row, prev) {
    const key = dayKey(row.date);
    const newDay = !prev || dayKey(prev.date) !== key;
    const cont = !newDay
      && row.newEl.hidden
      && String(prev.msg.user).toLowerCase() === String(row.msg.user).toLowerCase()
      && Math.abs(row.date - prev.date) < GROUP_WINDOW_MS;

    if (row.cont !== cont) {
      row.cont = cont;
      row.el.classList.toggle('cont', cont);
    }
    const dayText = newDay ? dayLabel(row.date) : null;
    if (row.dayText !== dayText) {
      row.dayText = dayText;
      row.dayEl.hidden = !newDay;
      if (dayText) setText(row.dayEl.firstChild, dayText);
    }
  }

  // ---- scrolling -------------------------------------------------------------------

  queueScrollToBottom() {
    if (this.scrollQueued) return;
    this.scrollQueued = true;
    const run = () => {
      this.scrollQueued = false;
      if (this.s && this.s.pinned) this.scrollToBottom(false);
      this.o.onSeen();
    };
    if (document.visibilityState === 'visible') requestAnimationFrame(run);
    else setTimeout(run, 30);
  }

  scrollToBottom(smooth) {
    const el = this.logEl;
    if (this.s) this.s.pinned = this.s.reachedEnd;
    if (smooth && typeof el.scrollTo === 'function') {
      // Jump most of a long way at once; glide only over the last screenful.
      const target = el.scrollHeight - el.clientHeight;
      if (target - el.scrollTop > el.clientHeight * 1.5) el.scrollTop = target - el.clientHeight;
      el.scrollTo({ top: target, behavior: 'smooth' });
    } else {
      el.scrollTop = el.scrollHeight;
    }
  }
}

/**
 * A loader button while its page loads: hidden behind the "Loading…" line, unless it has the
 * keyboard focus (hiding it would drop the focus to the page): then it stays, disabled.
 */
function busyButton(btn, loading) {
  btn.hidden = loading && document.activeElement !== btn;
  if (loading) btn.setAttribute('aria-disabled', 'true');
  else btn.removeAttribute('aria-disabled');
}

function sortedIndex(rows, id) {
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (rows[mid].id < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function removeFrom(arr, row) {
  const i = arr.indexOf(row);
  if (i >= 0) arr.splice(i, 1);
}

/** The first characters of a body, as a reply quotes it. */
export function excerpt(body) {
  return Array.from(String(body || '')).slice(0, EXCERPT_CHARS).join('');
}

/**
 * Markdown as the words a reader sees, on one line (for quotes of it, and search results):
 * rendered by renderMarkdown, so the markers go and nothing is ever parsed as HTML. Other
 * characters (the search snippets' match marks, U+0002 and U+0003) stay as they are.
 */
export function plainText(markdown) {
  const box = document.createElement('div');
  box.append(...renderMarkdown(markdown, '', { roomLinks: false, copyButtons: false }));
  for (const el of box.querySelectorAll('.md-code-bar')) el.remove(); // a code block's language
  for (const el of box.querySelectorAll('p, li, pre, blockquote, br')) el.after(' ');
  return box.textContent.replace(/\s+/g, ' ').trim();
}

/**
 * A quote of the message a reply answers: its author and the start of its text. An empty
 * excerpt is a message deleted or one of files alone: `original` (when it is loaded) tells.
 */
function quoteOf(reply, original) {
  const raw = String(reply.excerpt || '');
  const text = plainText(raw) || raw.replace(/\s+/g, ' ').trim();
  const gone = reply.deleted || (original && original.deleted);
  const files = original && !gone && Array.isArray(original.attachments) ? original.attachments.length : 0;
  let quoted;
  if (text) quoted = h('span', { class: 'msg-quote-text', dir: 'auto' }, text);
  else if (gone) quoted = h('span', { class: 'msg-quote-text is-gone' }, 'Original message deleted');
  else if (files) quoted = h('span', { class: 'msg-quote-text is-files' }, files === 1 ? '1 file' : `${files} files`);
  else if (original) quoted = h('span', { class: 'msg-quote-text is-gone' }, 'No text');
  else quoted = h('span', { class: 'msg-quote-text is-gone' }, 'No text: files, or deleted');
  // Named in one piece: the parts are laid out apart, which would put spaces in a name
  // built from them ("In reply to alice : …").
  return h('button', {
    type: 'button',
    class: 'msg-quote',
    title: 'Show the original message',
    'aria-label': `In reply to ${reply.user}: ${quoted.textContent}`,
    dataset: { replyTo: String(reply.id) },
  },
    h('span', { class: 'visually-hidden' }, 'In reply to '),
    h('span', { class: 'msg-quote-author', dir: 'auto' }, reply.user),
    h('span', { class: 'visually-hidden' }, ': '),
    quoted);
}

/** Put `row` (its day line, then the message) before the row `next` (null: at the end). */
function placeRow(s, row, next) {
  const at = next ? next.dayEl : null;
  s.el.insertBefore(row.dayEl, at);
  s.el.insertBefore(row.el, at);
}

/** Take `row` (and its day line) out of the log. */
function unplaceRow(row) {
  row.dayEl.remove();
  row.el.remove();
}

/** `reactions` after `user` reacted with `emoji` (`on`) or took it back. */
export function withReaction(reactions, emoji, user, on) {
  const list = Array.isArray(reactions) ? reactions.map((r) => ({ ...r, users: Array.isArray(r.users) ? r.users.slice() : [] })) : [];
  const key = String(user).toLowerCase();
  const i = list.findIndex((r) => r.emoji === emoji);
  const r = i >= 0 ? list[i] : { emoji, count: 0, users: [] };
  const has = r.users.some((u) => String(u).toLowerCase() === key);
  if (on && !has) r.users.push(user);
  if (!on && has) r.users = r.users.filter((u) => String(u).toLowerCase() !== key);
  r.count = r.users.length;
  if (i < 0 && r.count > 0) list.push(r);
  if (i >= 0 && r.count === 0) list.splice(i, 1);
  return list;
}
