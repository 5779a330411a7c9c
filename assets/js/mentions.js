// @mention autocomplete for the message box: a listbox of people (display name and
// @username) that opens while typing "@na…", driven by the keyboard (arrows, Enter or Tab to
// pick, Escape to close) or the pointer. The combobox pattern, as the quick switcher has it:
// the combobox says whether the list is open (aria-expanded) and which list it controls
// (aria-controls); the textarea keeps the focus and points at the active option with
// aria-activedescendant. (A textarea may not take the combobox role itself, so the role is on
// the element around it, #composer-field.)

import { h, setText } from './dom.js';
import { personAvatar, personParts } from './profiles.js';

const TOKEN = /(^|[^A-Za-z0-9_.\-])@([A-Za-z0-9_.\-]{0,32})$/;
const MAX = 8;

export class MentionAutocomplete {
  /**
   * @param {object} o
   * @param {HTMLTextAreaElement} o.input
   * @param {HTMLElement} o.listEl    an empty <ul> next to the composer
   * @param {HTMLElement} o.statusEl  a polite live region
   * @param {() => string[]} o.candidates  usernames, best first (room members first)
   * @param {() => string} o.me
   * @param {HTMLElement} [o.combobox]  the element with the combobox role (around the input)
   * @param {import('./profiles.js').Profiles} [o.profiles]  display names and pictures
   */
  constructor(o) {
    this.o = o;
    this.input = o.input;
    this.list = o.listEl;
    this.combobox = o.combobox || o.input;
    this.items = [];
    this.active = -1;
    this.token = null; // { start, end, query }
    this.open = false;

    this.list.setAttribute('role', 'listbox');
    this.list.setAttribute('aria-label', 'People to mention');
    this.input.setAttribute('aria-autocomplete', 'list');
    this.combobox.setAttribute('aria-haspopup', 'listbox');
    this.combobox.setAttribute('aria-controls', this.list.id);
    this.combobox.setAttribute('aria-expanded', 'false');

    this.input.addEventListener('input', () => this.update());
    this.input.addEventListener('click', () => this.update());
    this.input.addEventListener('blur', () => setTimeout(() => {
      if (document.activeElement !== this.input) this.close();
    }, 100));
    // Keep focus in the text box while an option is clicked.
    this.list.addEventListener('pointerdown', (e) => e.preventDefault());
  }

  /**
   * Handle a key in the message box. Returns true when the key was used here
   * (the composer must then not act on it).
   */
  onKeyDown(e) {
    if (!this.open) return false;
    switch (e.key) {
      case 'ArrowDown':
        this.move(1);
        break;
      case 'ArrowUp':
        this.move(-1);
        break;
      case 'Enter':
      case 'Tab':
        if (e.shiftKey && e.key === 'Enter') return false;
        if (this.active < 0) return false;
        this.choose(this.items[this.active]);
        break;
      case 'Escape':
        this.close();
        break;
      default:
        return false;
    }
    e.preventDefault();
    e.stopPropagation();
    return true;
  }

  /** Look at the text before the caret and open, refresh or close the list. */
  update() {
    const el = this.input;
    if (el.selectionStart !== el.selectionEnd) return this.close();
    const caret = el.selectionStart;
    const before = el.value.slice(0, caret);
    const m = TOKEN.exec(before);
    if (!m) return this.close();
    const query = m[2];
    const start = caret - query.length - 1;
    const q = query.toLowerCase();
    const me = (this.o.me() || '').toLowerCase();
    const seen = new Set();
    const names = [];
    for (const name of this.o.candidates()) {
      const key = String(name).toLowerCase();
      if (key === me || seen.has(key)) continue;
      seen.add(key);
      const shown = this.o.profiles ? this.o.profiles.name(name).toLowerCase() : key;
      if (key.startsWith(q) || shown.startsWith(q)) names.push(String(name));
    }
    if (!names.length) return this.close();
    this.token = { start, end: caret, query };
    this.render(names.slice(0, MAX));
    return undefined;
  }

  render(names) {
    const previous = this.active >= 0 ? this.items[this.active] : null;
    this.items = names;
    const keep = previous ? names.indexOf(previous) : -1;
    this.active = keep >= 0 ? keep : 0;
    const profiles = this.o.profiles || null;
    this.list.replaceChildren(...names.map((name, i) => {
      // Their display name, and the @username that the mention inserts.
      const who = personParts(name, profiles);
      return h('li', {
        id: `mention-option-${i}`,
        role: 'option',
        class: 'mention-option',
        'aria-selected': i === this.active ? 'true' : 'false',
        onclick: () => this.choose(name),
      }, personAvatar(name, profiles, 'xs'),
      h('span', { class: 'mention-name', dir: 'auto' }, who.name),
      who.handle ? h('span', { class: 'mention-handle' }, who.handle) : null);
    }));
    this.list.hidden = false;
    this.open = true;
    this.combobox.setAttribute('aria-expanded', 'true');
    this.input.setAttribute('aria-controls', this.list.id);
    this.input.setAttribute('aria-activedescendant', `mention-option-${this.active}`);
    setText(this.o.statusEl, `${names.length} ${names.length === 1 ? 'person' : 'people'} to mention. Up and down arrows to choose, Enter to insert.`);
  }

  /** Display names or pictures changed: show the open list again. */
  refresh() {
    if (this.open) this.render(this.items.slice());
  }

  move(delta) {
    if (!this.items.length) return;
    this.active = (this.active + delta + this.items.length) % this.items.length;
    for (const [i, li] of Array.from(this.list.children).entries()) {
      li.setAttribute('aria-selected', i === this.active ? 'true' : 'false');
      if (i === this.active) li.scrollIntoView({ block: 'nearest' });
    }
    this.input.setAttribute('aria-activedescendant', `mention-option-${this.active}`);
  }

  choose(name) {
    if (!this.token || !name) return;
    const el = this.input;
    const { start, end } = this.token;
    const after = el.value.slice(end);
    const insert = `@${name}${after.startsWith(' ') ? '' : ' '}`;
    el.value = el.value.slice(0, start) + insert + after;
    const caret = start + insert.length;
    el.setSelectionRange(caret, caret);
    this.close();
    el.focus();
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }

  close() {
    if (!this.open && this.list.hidden) return;
    this.open = false;
    this.items = [];
    this.active = -1;
    this.token = null;
    this.list.hidden = true;
    this.list.replaceChildren();
    this.combobox.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
    this.input.removeAttribute('aria-controls');
    setText(this.o.statusEl, '');
  }
}
