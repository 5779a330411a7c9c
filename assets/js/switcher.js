// The quick switcher (Ctrl/Cmd+K): a filterable list of rooms and direct
// messages in a modal dialog. A combobox with a listbox popup: arrows move,
// Enter opens, Escape closes.

import { $, h } from './dom.js';
import { avatar } from './format.js';
import { openDialog, wireDialog } from './dialogs.js';

const MAX = 50;

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
    wireDialog(this.dialog);

    $('#switcher-open').addEventListener('click', () => this.open());
    this.input.addEventListener('input', () => {
      this.active = 0;
      this.render();
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
        if (item) this.choose(item.name);
      }
    });
    this.list.addEventListener('pointerdown', (e) => e.preventDefault());
  }

  get isOpen() { return this.dialog.open; }

  open() {
    if (this.isOpen) return;
    this.input.value = '';
    this.active = 0;
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

  render() {
    const store = this.app.store;
    this.items = this.candidates();
    if (this.active >= this.items.length) this.active = Math.max(0, this.items.length - 1);
    this.list.replaceChildren(...this.items.map((r, i) => {
      const count = store.countFor(r);
      const isDm = r.kind === 'dm';
      return h('li', {
        id: `switcher-option-${i}`,
        role: 'option',
        class: 'switcher-option',
        'aria-selected': i === this.active ? 'true' : 'false',
        dataset: { room: r.name },
        onclick: () => this.choose(r.name),
      },
      isDm ? avatar(store.others(r)[0] || '?', 'xs') : h('span', { class: 'room-link-hash', 'aria-hidden': 'true' }, '#'),
      h('span', { class: 'switcher-name' }, store.title(r)),
      r.name === this.app.current ? h('span', { class: 'switcher-tag' }, 'open') : null,
      r.mentions > 0 ? h('span', { class: 'room-mentions', 'aria-hidden': 'true' }, `@${r.mentions}`) : null,
      count > 0 && r.notify === 'all' ? h('span', { class: 'room-unread', 'aria-hidden': 'true' }, String(count)) : null,
      badgeText(r) ? h('span', { class: 'visually-hidden' }, `, ${badgeText(r)}`) : null);
    }));
    if (!this.items.length) {
      this.list.append(h('li', { class: 'switcher-empty', role: 'presentation' }, 'Nothing matches.'));
      this.input.removeAttribute('aria-activedescendant');
    } else {
      this.input.setAttribute('aria-activedescendant', `switcher-option-${this.active}`);
    }
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

  async choose(name) {
    this.close();
    await this.app.openRoom(name);
    this.app.composer.focus();
  }
}


