// Message search: the box in the header and the results panel (newest first,
// highlighted snippets, room and author filters, "Load more").

import { api, ApiError } from './api.js';
import { $, h, setText } from './dom.js';
import { avatar, formatFull, formatTime, dayLabel, parseTs, renderSnippet } from './format.js';
import { plainText } from './log.js';
import { paintAvatar } from './profiles.js';

const LIMIT = 20;

export class SearchPanel {
  constructor(app) {
    this.app = app;
    this.panel = $('#search-panel');
    this.input = $('#search-input');
    this.roomSel = $('#search-room');
    this.userInput = $('#search-user');
    this.list = $('#search-results');
    this.status = $('#search-status');
    this.error = $('#search-error');
    this.moreBtn = $('#search-more');
    this.query = null;   // { q, room, user }
    this.next = null;    // next_before
    this.seq = 0;
    this.loading = false;
    this.isOpen = false;
    this.wide = window.matchMedia('(min-width: 1025px)');

    $('#search-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.run();
    });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.isOpen) {
        e.preventDefault();
        this.close(false);
      } else if (e.key === 'Tab' && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && this.isOpen) {
        // The results come next after the box (in the page they come last): the first result,
        // or the panel's first control while there is none.
        const target = this.list.querySelector('button') || this.tabbables()[0];
        if (target) {
          e.preventDefault();
          target.focus();
        }
      }
    });
    // ...and back: Shift+Tab from the panel's first control returns to the box. The panel sits
    // between the box and the rest of the page in the Tab order: Tab from its last control
    // goes on to what follows the box (it is not modal beside a wide conversation).
    this.panel.addEventListener('keydown', (e) => {
      if (e.key !== 'Tab' || e.altKey || e.ctrlKey || e.metaKey) return;
      const controls = this.tabbables();
      if (e.shiftKey && e.target === controls[0]) {
        e.preventDefault();
        this.input.focus();
      } else if (!e.shiftKey && e.target === controls[controls.length - 1]) {
        const next = this.afterBox();
        if (next) {
          e.preventDefault();
          next.focus();
        }
      }
    });
    // Shift+Tab from what follows the box comes back to the panel's last control.
    document.addEventListener('keydown', (e) => {
      if (e.key !== 'Tab' || !e.shiftKey || e.altKey || e.ctrlKey || e.metaKey || !this.isOpen) return;
      if (e.defaultPrevented || e.target === this.input || e.target !== this.afterBox()) return;
      const controls = this.tabbables();
      if (!controls.length) return;
      e.preventDefault();
      controls[controls.length - 1].focus();
    });
    // Up to 1024 px wide the panel covers the conversation (see covers()).
    this.wide.addEventListener('change', () => this.app.syncDrawerA11y());
    $('#search-close').addEventListener('click', () => this.close(true));
    $('#search-filters').addEventListener('submit', (e) => {
      e.preventDefault();
      this.run();
    });
    this.roomSel.addEventListener('change', () => this.run());
    this.userInput.addEventListener('change', () => this.run());
    this.moreBtn.addEventListener('click', () => this.loadMore());
    this.panel.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        this.close(true);
      }
    });
    this.roomsChanged();
  }

  reset() {
    this.close(false);
    this.input.value = '';
    this.userInput.value = '';
    this.roomSel.value = '';
    this.list.replaceChildren();
    setText(this.status, '');
    setText(this.error, '');
    this.moreBtn.hidden = true;
    this.query = null;
  }

  /** Keep the room filter's options in step with the sidebar. */
  roomsChanged() {
    const store = this.app.store;
    const current = this.roomSel.value;
    const options = [h('option', { value: '' }, 'All rooms')];
    for (const r of store.rooms()) options.push(h('option', { value: r.name }, `#${r.name}`));
    for (const r of store.dms()) options.push(h('option', { value: r.name }, dmLabel(store, r)));
    const key = options.map((o) => o.value + o.textContent).join('|');
    if (key === this.optionsKey) return;
    this.optionsKey = key;
    this.roomSel.replaceChildren(...options);
    this.roomSel.value = Array.from(this.roomSel.options).some((o) => o.value === current) ? current : '';
  }

  open() {
    if (this.isOpen) return;
    this.isOpen = true;
    this.panel.hidden = false;
    $('#workspace').classList.add('is-searching');
    this.app.setPanelOpen(false);
    this.app.syncDrawerA11y();
  }

  /** @param {boolean} focusBox  give focus back to the search box */
  close(focusBox) {
    if (!this.isOpen) return;
    this.isOpen = false;
    this.panel.hidden = true;
    $('#workspace').classList.remove('is-searching');
    this.app.syncDrawerA11y();
    if (focusBox) this.input.focus();
  }

  /**
   * Do the results cover the conversation (up to 1024 px wide)? Then what they cover is inert
   * (out of the Tab order and the accessibility tree) until they close.
   */
  covers() {
    return this.isOpen && !this.wide.matches;
  }

  /** The page's first control after the search box in the Tab order, outside the panel. */
  afterBox() {
    const all = Array.from(document.querySelectorAll('button, input, select, textarea, a[href], [tabindex]'))
      .filter((el) => !el.disabled && el.tabIndex >= 0 && !el.closest('[inert], [hidden], #search-panel')
        && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden');
    return all[all.indexOf(this.input) + 1] || null;
  }

  /** The panel's controls in the Tab order, in order. */
  tabbables() {
    return Array.from(this.panel.querySelectorAll('button, input, select, a[href]'))
      .filter((el) => !el.disabled && el.tabIndex >= 0 && el.getClientRects().length > 0);
  }

  async run() {
    const q = this.input.value.trim();
    if (!q) {
      this.input.focus();
      return;
    }
    this.open();
    this.query = { q, room: this.roomSel.value || null, user: this.userInput.value.trim().replace(/^@/, '') || null };
    this.next = null;
    this.list.replaceChildren();
    this.moreBtn.hidden = true;
    await this.fetchPage(true);
  }

  async loadMore() {
    if (this.next == null || this.loading) return;
    await this.fetchPage(false);
  }

  async fetchPage(first) {
    const seq = ++this.seq;
    this.loading = true;
    setText(this.error, '');
    setText(this.status, first ? 'Searching…' : 'Loading more results…');
    this.moreBtn.disabled = true;
    try {
      const data = await api.search({ ...this.query, limit: LIMIT, before: first ? null : this.next });
      if (seq !== this.seq) return;
      const results = (data && Array.isArray(data.results)) ? data.results : [];
      this.next = data && data.next_before != null ? data.next_before : null;
      const focusFrom = this.list.children.length;
      this.list.append(...results.map((r) => this.item(r)));
      const total = this.list.children.length;
      setText(this.status, total === 0
        ? `No messages match “${this.query.q}”.`
        : `${total}${this.next != null ? '+' : ''} message${total === 1 ? ' matches' : 's match'} “${this.query.q}”.`);
      this.moreBtn.hidden = this.next == null;
      // Keep keyboard users where the new results begin.
      if (!first && results.length) {
        const btn = this.list.children[focusFrom] && this.list.children[focusFrom].querySelector('button');
        if (btn) btn.focus();
      }
    } catch (err) {
      if (seq !== this.seq) return;
      setText(this.status, '');
      setText(this.error, err instanceof ApiError ? searchError(err) : 'Search failed. Please try again.');
    } finally {
      if (seq === this.seq) {
        this.loading = false;
        this.moreBtn.disabled = false;
      }
    }
  }

  item(r) {
    const store = this.app.store;
    const room = store.get(r.room);
    // A direct message is labelled as one, not by a bare name as if it were a room.
    const isDm = room ? room.kind === 'dm' : String(r.room).startsWith('dm:');
    const where = isDm ? (room ? dmLabel(store, room) : 'A direct message') : `#${room ? room.name : r.room}`;
    const date = parseTs(r.ts);
    const snippet = plainSnippet(r.snippet != null ? r.snippet : r.body);
    const profiles = this.app.profiles;
    const face = avatar(r.user, 'xs');
    if (profiles) paintAvatar(face, r.user, profiles);
    return h('li', { class: 'result' },
      h('button', {
        type: 'button',
        class: 'result-btn',
        dataset: { id: String(r.id), room: r.room },
        onclick: () => this.choose(r),
      },
      h('span', { class: 'result-meta' },
        face,
        h('span', { class: 'result-author', dir: 'auto', title: `@${r.user}` }, profiles ? profiles.name(r.user) : r.user),
        h('span', { class: `result-room${isDm ? ' is-dm' : ''}` }, where),
        h('time', { class: 'result-time', datetime: date.toISOString(), title: formatFull(date) }, `${dayLabel(date)}, ${formatTime(date)}`)),
      h('span', { class: 'result-snippet', dir: 'auto' }, renderSnippet(snippet))));
  }

  async choose(r) {
    if (!this.wide.matches) this.close(false);
    await this.app.openRoom(r.room, { at: r.id });
    // Reading it: move focus to the conversation so the reader lands there.
    if (!this.isOpen) this.app.log.logEl.focus({ preventScroll: true });
  }
}

/** "Direct message with alice" ("Group conversation with alice, bob"). */
function dmLabel(store, room) {
  return `${store.others(room).length > 1 ? 'Group conversation' : 'Direct message'} with ${store.title(room)}`;
}

/**
 * A snippet (Markdown, its matches between U+0002 and U+0003) as the words a reader sees, on
 * one line: no fences, `**` or `>` (plainText renders it, making only text of it, and keeps
 * the match marks for renderSnippet).
 */
function plainSnippet(snippet) {
  const raw = String(snippet == null ? '' : snippet);
  return plainText(raw) || raw;
}

function searchError(err) {
  switch (err.code) {
    case 'not_a_member': return 'You cannot search that room: you are not a member.';
    case 'unknown_room': return 'That room does not exist.';
    case 'bad_request': return err.message || 'Type between 1 and 200 characters to search.';
    default: return err.message;
  }
}
