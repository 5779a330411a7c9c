// The message list: ordering by id, de-duplication, grouping, day separators,
// pending/failed messages and scroll behaviour.

import { h, setText, prefersReducedMotion } from './dom.js';
import { avatar, dayKey, dayLabel, formatFull, formatTime, parseTs, renderBody } from './format.js';

const GROUP_WINDOW_MS = 5 * 60 * 1000;
const PIN_THRESHOLD_PX = 56;
const LOAD_OLDER_THRESHOLD_PX = 400;

export class MessageLog {
  /**
   * @param {object} o
   * @param {HTMLElement} o.logEl      the scrolling role=log element
   * @param {HTMLElement} o.listEl     container of message rows
   * @param {HTMLElement} o.startEl    "Beginning of #room"
   * @param {HTMLElement} o.loaderEl   holds the load-older button and spinner
   * @param {HTMLButtonElement} o.loadBtn
   * @param {HTMLElement} o.loadingEl
   * @param {HTMLButtonElement} o.jumpBtn "New messages ↓"
   * @param {(beforeId: number) => Promise<{messages: object[], reachedStart: boolean}>} o.onLoadOlder
   * @param {(nonce: string) => void} o.onRetry
   * @param {(nonce: string) => void} o.onDiscard
   */
  constructor(o) {
    this.o = o;
    this.logEl = o.logEl;
    this.listEl = o.listEl;
    this.me = '';
    this.room = '';
    this.confirmed = []; // rows ordered by id
    this.pending = [];   // own unsent/unacknowledged rows, in the order written
    this.byId = new Map();
    this.byNonce = new Map();
    this.pinned = true;
    this.reachedStart = false;
    this.loadingOlder = false;
    this.olderFailed = false;
    this.ready = false;
    this.scrollQueued = false;
    this.lastDayKey = dayKey(new Date());

    this.logEl.addEventListener('scroll', () => this.onScroll(), { passive: true });
    o.loadBtn.addEventListener('click', () => this.loadOlder());
    o.jumpBtn.addEventListener('click', () => {
      this.scrollToBottom(!prefersReducedMotion());
      this.o.jumpBtn.hidden = true;
      // Keep keyboard users in the conversation.
      this.logEl.focus({ preventScroll: true });
    });

    // Stay at the bottom when the list grows or the log shrinks (composer grows).
    if ('ResizeObserver' in window) {
      const ro = new ResizeObserver(() => {
        if (this.pinned) this.scrollToBottom(false);
      });
      ro.observe(this.logEl);
      ro.observe(this.listEl);
    }

    // Day labels ("Today") go stale at midnight.
    setInterval(() => {
      const k = dayKey(new Date());
      if (k !== this.lastDayKey) {
        this.lastDayKey = k;
        this.refreshAll();
      }
    }, 60_000);
  }

  reset({ room, me }) {
    this.room = room;
    this.me = me;
    this.confirmed = [];
    this.pending = [];
    this.byId.clear();
    this.byNonce.clear();
    this.listEl.replaceChildren();
    this.pinned = true;
    this.reachedStart = false;
    this.loadingOlder = false;
    this.olderFailed = false;
    this.ready = false;
    this.o.jumpBtn.hidden = true;
    this.o.startEl.hidden = true;
    this.o.loaderEl.hidden = true;
    for (const el of this.o.startEl.querySelectorAll('.log-start-room')) setText(el, `#${room}`);
    this.logEl.setAttribute('aria-label', `#${room} conversation`);
  }

  setMe(name) { this.me = name; }

  isOwn(user) { return this.me && String(user).toLowerCase() === this.me.toLowerCase(); }

  get oldestId() { return this.confirmed.length ? this.confirmed[0].id : 0; }
  get newestId() { return this.confirmed.length ? this.confirmed[this.confirmed.length - 1].id : 0; }
  get isEmpty() { return this.confirmed.length === 0 && this.pending.length === 0; }

  // ---- loading -------------------------------------------------------------

  /** Initial history (oldest first). */
  setHistory(messages, reachedStart) {
    this.logEl.setAttribute('aria-busy', 'true');
    for (const m of messages) this.insertMessage(m);
    this.refreshAll();
    this.setReachedStart(reachedStart);
    this.ready = true;
    this.logEl.setAttribute('aria-busy', 'false');
    this.pinned = true;
    this.scrollToBottom(false);
    this.fillViewport();
  }

  setReachedStart(value) {
    this.reachedStart = value;
    this.o.startEl.hidden = !value;
    this.o.loaderEl.hidden = value;
  }

  setLoadingOlder(loading) {
    this.loadingOlder = loading;
    this.o.loadBtn.hidden = loading;
    this.o.loadingEl.hidden = !loading;
  }

  onScroll() {
    const wasPinned = this.pinned;
    this.pinned = this.distanceFromBottom() < PIN_THRESHOLD_PX;
    if (this.pinned && !wasPinned) this.o.jumpBtn.hidden = true;
    if (this.logEl.scrollTop < LOAD_OLDER_THRESHOLD_PX && !this.olderFailed) this.loadOlder();
  }

  distanceFromBottom() {
    const el = this.logEl;
    return el.scrollHeight - el.scrollTop - el.clientHeight;
  }

  /** Keep loading older pages until the log can scroll (or the start is reached). */
  fillViewport() {
    if (!this.reachedStart && this.logEl.scrollHeight <= this.logEl.clientHeight + 8) this.loadOlder();
  }

  async loadOlder() {
    if (!this.ready || this.loadingOlder || this.reachedStart || this.confirmed.length === 0) return;
    this.setLoadingOlder(true);
    this.olderFailed = false;
    const before = this.oldestId;
    let messages = null;
    try {
      messages = await this.o.onLoadOlder(before);
    } catch {
      messages = null;
    }
    this.setLoadingOlder(false);
    if (messages == null) {
      // Failed: leave the button so the reader can try again.
      this.olderFailed = true;
      setText(this.o.loadBtn, 'Couldn’t load older messages. Try again');
      return;
    }
    setText(this.o.loadBtn, 'Load older messages');
    this.prependOlder(messages.messages, messages.reachedStart);
    this.fillViewport();
  }

  prependOlder(messages, reachedStart) {
    const el = this.logEl;
    const heightBefore = el.scrollHeight;
    const topBefore = el.scrollTop;
    el.setAttribute('aria-busy', 'true');
    for (const m of messages) this.insertMessage(m);
    this.refreshAll();
    this.setReachedStart(reachedStart);
    el.setAttribute('aria-busy', 'false');
    if (!this.pinned) el.scrollTop = topBefore + (el.scrollHeight - heightBefore);
    else this.scrollToBottom(false);
  }

  // ---- live messages ------------------------------------------------------------

  /**
   * Add messages from the server (live, replayed or paged after a gap).
   * Returns the number of messages that were new to the list.
   */
  addMessages(messages, { quiet = false } = {}) {
    let added = 0;
    let fromOthers = false;
    let own = false;
    if (quiet) this.logEl.setAttribute('aria-busy', 'true');
    for (const m of messages) {
      const result = this.insertMessage(m, true);
      if (!result) continue;
      added++;
      if (result === 'confirmed-own') continue;
      if (this.isOwn(m.user)) own = true;
      else fromOthers = true;
    }
    if (quiet) this.logEl.setAttribute('aria-busy', 'false');
    if (!added) return 0;
    if (this.pinned || own) this.queueScrollToBottom();
    else if (fromOthers) this.o.jumpBtn.hidden = false;
    return added;
  }

  /**
   * Insert one message. Returns false when it was already shown,
   * 'confirmed-own' when it acknowledged a pending message, true otherwise.
   */
  insertMessage(m, refresh = false) {
    if (!m || typeof m.id !== 'number') return false;
    const pendingRow = m.nonce && this.isOwn(m.user) ? this.byNonce.get(m.nonce) : null;

    if (this.byId.has(m.id)) {
      // Already shown; a duplicate echo can still settle a pending copy.
      if (pendingRow) this.removeRow(pendingRow);
      return false;
    }

    let row;
    let result = true;
    if (pendingRow) {
      row = pendingRow;
      this.removeFromArray(this.pending, row);
      this.byNonce.delete(m.nonce);
      row.msg = m;
      row.id = m.id;
      row.date = parseTs(m.ts);
      row.pending = false;
      row.failed = false;
      this.renderTime(row);
      this.setStatus(row, null);
      row.el.dataset.id = String(m.id);
      result = 'confirmed-own';
    } else {
      row = this.buildRow(m, false);
    }

    const index = this.sortedIndex(m.id);
    const next = this.confirmed[index] || this.pending[0] || null;
    this.listEl.insertBefore(row.el, next ? next.el : null);
    this.confirmed.splice(index, 0, row);
    this.byId.set(m.id, row);

    if (refresh) {
      this.refreshRow(row);
      if (next) this.refreshRow(next);
      // The pending row may have left a hole where it was.
      if (pendingRow) for (const p of this.pending.slice(0, 1)) this.refreshRow(p);
    }
    return result;
  }

  sortedIndex(id) {
    let lo = 0;
    let hi = this.confirmed.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.confirmed[mid].id < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // ---- pending messages -----------------------------------------------------

  addPending({ nonce, body, room, user }) {
    const msg = { id: null, room, user, body, ts: new Date().toISOString(), nonce };
    const row = this.buildRow(msg, true);
    row.nonce = nonce;
    this.pending.push(row);
    this.byNonce.set(nonce, row);
    this.listEl.append(row.el);
    this.refreshRow(row);
    this.pinned = true;
    this.o.jumpBtn.hidden = true;
    this.queueScrollToBottom();
    return row;
  }

  hasPending(nonce) { return this.byNonce.has(nonce); }

  /** Pending (not failed) messages in the order they were written. */
  unsent() { return this.pending.filter((r) => !r.failed).map((r) => r.msg); }

  markFailed(nonce, reason) {
    const row = this.byNonce.get(nonce);
    if (!row) return false;
    row.failed = true;
    row.el.classList.add('failed');
    row.el.classList.remove('pending');
    this.setStatus(row, 'failed', reason);
    this.refreshRow(row);
    return true;
  }

  markRetrying(nonce) {
    const row = this.byNonce.get(nonce);
    if (!row) return null;
    row.failed = false;
    row.el.classList.remove('failed');
    row.el.classList.add('pending');
    this.setStatus(row, 'pending');
    return row.msg;
  }

  discard(nonce) {
    const row = this.byNonce.get(nonce);
    if (!row) return;
    this.removeRow(row);
  }

  removeRow(row) {
    const seq = this.sequence();
    const i = seq.indexOf(row);
    const next = i >= 0 ? seq[i + 1] : null;
    if (row.nonce) this.byNonce.delete(row.nonce);
    this.removeFromArray(this.pending, row);
    if (row.id != null && this.byId.get(row.id) === row) {
      this.byId.delete(row.id);
      this.removeFromArray(this.confirmed, row);
    }
    row.el.remove();
    if (next) this.refreshRow(next);
  }

  removeFromArray(arr, row) {
    const i = arr.indexOf(row);
    if (i >= 0) arr.splice(i, 1);
  }

  // ---- rendering -----------------------------------------------------------------

  buildRow(msg, pending) {
    const own = this.isOwn(msg.user);
    const date = parseTs(msg.ts);
    const row = {
      id: msg.id, msg, date, pending, failed: false, nonce: msg.nonce || null,
      own, cont: null, dayText: null,
    };

    row.dayEl = h('div', { class: 'day-sep', hidden: true }, h('span', { class: 'day-sep-label' }));
    row.timeEl = h('time', { class: 'msg-time' });
    row.headEl = h('div', { class: 'msg-head' },
      h('span', { class: 'msg-author' }, msg.user),
      h('span', { class: 'visually-hidden' }, ', '),
      row.timeEl);
    row.bubbleEl = h('div', { class: 'msg-bubble' }, h('div', { class: 'msg-body' }, renderBody(msg.body)));
    row.statusEl = h('div', { class: 'msg-status', hidden: true });

    row.el = h('div', {
      class: `msg${own ? ' own' : ''}${pending ? ' pending' : ''}`,
      dataset: msg.id != null ? { id: String(msg.id) } : {},
    },
    row.dayEl,
    h('div', { class: 'msg-row' },
      own ? null : avatar(msg.user),
      h('div', { class: 'msg-content' }, row.headEl, row.bubbleEl, row.statusEl)));

    this.renderTime(row);
    if (pending) this.setStatus(row, 'pending');
    return row;
  }

  renderTime(row) {
    const iso = row.date.toISOString();
    const full = formatFull(row.date);
    row.timeEl.setAttribute('datetime', iso);
    row.timeEl.title = full;
    setText(row.timeEl, formatTime(row.date));
    row.bubbleEl.title = full;
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
    if (kind === 'pending') {
      el.replaceChildren(h('span', { class: 'msg-sending' }, 'sending…'));
      return;
    }
    const nonce = row.nonce;
    el.replaceChildren(
      h('span', { class: 'msg-failed-text' },
        h('span', { class: 'msg-failed-icon', 'aria-hidden': 'true' }, '!'),
        `Not sent${reason ? `: ${reason}` : ''}`),
      h('span', { class: 'msg-actions' },
        h('button', { type: 'button', class: 'link-btn', onclick: () => this.o.onRetry(nonce) }, 'Retry'),
        h('button', { type: 'button', class: 'link-btn', onclick: () => this.o.onDiscard(nonce) }, 'Discard')),
    );
  }

  /** The displayed order: confirmed by id, then pending. */
  sequence() { return this.confirmed.concat(this.pending); }

  prevOf(row) {
    let i = this.confirmed.indexOf(row);
    if (i >= 0) return i > 0 ? this.confirmed[i - 1] : null;
    i = this.pending.indexOf(row);
    if (i > 0) return this.pending[i - 1];
    return this.confirmed.length ? this.confirmed[this.confirmed.length - 1] : null;
  }

  refreshAll() {
    let prev = null;
    for (const row of this.sequence()) {
      this.applyGrouping(row, prev);
      prev = row;
    }
  }

  refreshRow(row) {
    this.applyGrouping(row, this.prevOf(row));
  }

  applyGrouping(row, prev) {
    const key = dayKey(row.date);
    const newDay = !prev || dayKey(prev.date) !== key;
    const cont = !newDay
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
      this.scrollToBottom(false);
    };
    if (document.visibilityState === 'visible') requestAnimationFrame(run);
    else setTimeout(run, 30);
  }

  scrollToBottom(smooth) {
    const el = this.logEl;
    this.pinned = true;
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
