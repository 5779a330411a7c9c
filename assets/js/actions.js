// What a reader can do with a message: the small toolbar ("Reply", "Add reaction", "Edit",
// "Delete"), the reaction chips, the quote of the message a reply answers, the inline editor,
// and moving between messages with the keyboard.
//
// The toolbar is built for one message at a time, the active one: the message under the mouse,
// the one holding keyboard focus, or the one last tapped on a touch screen (a second tap hides
// it again). It stays where it is while the emoji picker or a confirmation it opened is up.
// A tap also shows the time of a message that is grouped under the one before it (which
// otherwise shows no time: there is no hover on a touch screen).
//
// Keyboard: the message rows form a roving tab stop inside the log. Tab reaches one message
// (the newest, or the one last focused); Up and Down (Home, End) move between messages; Tab
// from a message goes through its toolbar, then through what is inside the message. What is
// inside the other messages (links, "Copy code", code blocks that scroll, reactions) stays out
// of the Tab order (log.js syncInner), so the whole log is one tab stop.

import { h } from './dom.js';
import { charCount } from './format.js';
import { openEmojiPicker } from './emoji.js';

const SVG = 'http://www.w3.org/2000/svg';
const MAX_CHARS = 4000;

const ICONS = {
  reply: 'M10 9V5l-7 7 7 7v-4.1c5 0 8.5 1.6 11 5.1-1-5-4-10-11-11Z',
  react: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20Zm0 18a8 8 0 1 1 0-16 8 8 0 0 1 0 16Zm-3.5-9A1.5 1.5 0 1 0 8.5 8a1.5 1.5 0 0 0 0 3Zm7 0a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3ZM12 17.5c2.3 0 4.3-1.5 5.1-3.5H6.9c.8 2 2.8 3.5 5.1 3.5Z',
  edit: 'M3 17.2V21h3.8l11-11-3.8-3.8-11 11ZM20.7 7a1 1 0 0 0 0-1.4l-2.3-2.3a1 1 0 0 0-1.4 0l-1.8 1.8 3.8 3.8L20.7 7Z',
  link: 'M10.6 13.4a1 1 0 0 1 0-1.4l3.5-3.5a3 3 0 0 1 4.2 4.2l-2.1 2.1-1.4-1.4 2.1-2.1a1 1 0 0 0-1.4-1.4L12 13.4a1 1 0 0 1-1.4 0Zm2.8-2.8a1 1 0 0 1 0 1.4l-3.5 3.5a3 3 0 0 1-4.2-4.2l2.1-2.1 1.4 1.4-2.1 2.1a1 1 0 0 0 1.4 1.4l3.5-3.5a1 1 0 0 1 1.4 0Z',
  delete: 'M6 19a2 2 0 0 0 2 2h8a2 2 0 0 0 2-2V7H6v12Zm2-10h8v10H8V9Zm7.5-5-1-1h-5l-1 1H5v2h14V4h-3.5Z',
};

/** The toolbar's buttons, in order: [action, accessible name]. */
const TOOLS = [
  ['reply', 'Reply'],
  ['react', 'Add reaction'],
  ['edit', 'Edit'],
  ['link', 'Copy link to message'],
  ['delete', 'Delete'],
];

/** A decorative icon (the buttons carry the names). */
function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}

const INTERACTIVE = 'a, button, textarea, input, select, summary, [role="button"], .msg-editor';

export class MessageActions {
  /**
   * @param {import('./log.js').MessageLog} log
   * @param {object} o  the MessageLog's options (see there): permissions, onReply, onReact,
   *   onEdit, onDelete, onQuote
   */
  constructor(log, o) {
    this.log = log;
    this.o = o;
    this.logEl = o.logEl;
    this.active = null;   // { row, bar, tapped }
    this.pinned = 0;      // a picker or a dialog opened from the toolbar is up
    this.hovered = null;  // the row under the mouse
    this.input = '';      // what the reader used last: 'mouse', 'touch', 'pen' or 'keyboard'
    this.editing = null;  // the row being edited
    this.quiet = false;   // moving focus ourselves: not a reason to show a toolbar
    this.timeRow = null;  // the row whose time a tap revealed

    const el = this.logEl;
    // Hover follows real mouse movement only: after a tap, browsers may report the pointer
    // "entering" whatever the layout moved under the spot that was touched.
    el.addEventListener('pointermove', (e) => {
      if (e.pointerType !== 'mouse') return;
      if (this.touching() && !e.movementX && !e.movementY) return;
      this.input = 'mouse';
      const row = this.rowAt(e.target);
      const left = this.hovered && !row;
      this.hovered = row;
      if (row) this.claim(row, 'hover');
      else if (left) this.releaseSoon();
    });
    el.addEventListener('pointerleave', (e) => {
      if (e.pointerType !== 'mouse') return;
      this.hovered = null;
      this.releaseSoon();
    });
    el.addEventListener('focusin', (e) => this.onFocusIn(e));
    el.addEventListener('focusout', () => this.releaseSoon());
    el.addEventListener('click', (e) => this.onClick(e));
    el.addEventListener('keydown', (e) => this.onKey(e));
    document.addEventListener('keydown', () => { this.input = 'keyboard'; }, true);
    // A tap or click anywhere else lets go of a tapped message.
    document.addEventListener('pointerdown', (e) => {
      this.input = e.pointerType || 'mouse';
      if (this.timeRow && !this.pinned && !this.timeRow.el.contains(e.target)) this.revealTime(null);
      const a = this.active;
      if (!a || this.pinned || a.row.el.contains(e.target)) return;
      a.tapped = false;
      this.releaseSoon();
    }, true);
  }

  /** The row (of the shown room) that `node` is in. */
  rowAt(node) {
    if (!(node instanceof Element)) return null;
    const el = node.closest('.msg');
    return el ? this.log.rowOf(el) : null;
  }

  // ---- the toolbar ---------------------------------------------------------------------

  /** `row` wants the toolbar (hovered or focused). */
  claim(row, how) {
    if (this.pinned) return;
    const a = this.active;
    if (a && a.row === row) return;
    // The mouse passing over other messages does not take the toolbar from the keyboard.
    const focused = document.activeElement;
    if (how === 'hover' && a && a.bar.contains(focused) && focused.matches(':focus-visible')) return;
    this.show(row);
  }

  releaseSoon() {
    setTimeout(() => this.release(), 0);
  }

  /** Hide the toolbar unless something still holds it. */
  release() {
    const a = this.active;
    if (!a || this.pinned) return;
    if (a.tapped || this.hovered === a.row || a.row.el.contains(document.activeElement)) return;
    this.hide();
  }

  show(row, tapped = false) {
    this.hide();
    const s = this.log.current;
    if (!s || row.pending || row.id == null || row.editor || row.msg.deleted) return;
    const may = this.o.permissions(s, row);
    if (!may) return;
    const buttons = TOOLS.filter(([action]) => may[action]).map(([action, name]) => h('button', {
      type: 'button',
      class: `msg-tool${action === 'delete' ? ' msg-tool-danger' : ''}`,
      'aria-label': name,
      title: name,
      'aria-haspopup': action === 'react' || action === 'delete' ? 'dialog' : null,
      dataset: { action },
    }, icon(action)));
    if (!buttons.length) return;
    const bar = h('div', { class: 'msg-tools', role: 'group', 'aria-label': 'Message actions' }, buttons);
    bar.addEventListener('click', (e) => {
      const btn = e.target.closest('button[data-action]');
      if (btn) this.run(btn.dataset.action, row, btn);
    });
    row.contentEl.prepend(bar);
    row.el.classList.add('is-active');
    this.active = { row, bar, tapped };
    this.place(bar, tapped);
  }

  /**
   * Where the log is narrow the toolbar floats under the message (actions.css): there while the
   * log shows room for it, else above the message. Only a tapped message too tall for either
   * scrolls the log to show its toolbar. Where the log is wide the toolbar is beside the message.
   */
  place(bar, tapped) {
    const log = this.logEl.getBoundingClientRect();
    const below = bar.getBoundingClientRect();
    if (below.bottom <= log.bottom - 4) return;
    bar.classList.add('is-above');
    const above = bar.getBoundingClientRect();
    if (above.top === below.top) {
      bar.classList.remove('is-above');
      return;
    }
    if (above.top >= log.top + 4) return;
    bar.classList.remove('is-above');
    if (tapped) this.log.scrollIntoLog(bar, 'nearest');
  }

  hide() {
    const a = this.active;
    if (!a) return;
    this.active = null;
    const hadFocus = a.bar.contains(document.activeElement);
    a.bar.remove();
    a.row.el.classList.remove('is-active');
    if (this.timeRow === a.row) this.revealTime(null);
    if (hadFocus && a.row.el.isConnected) this.focusQuietly(a.row.el);
  }

  /** Show the time of `row` even where it is grouped under the message before (null: none). */
  revealTime(row) {
    if (this.timeRow === row) return;
    if (this.timeRow) this.timeRow.el.classList.remove('show-time');
    this.timeRow = row;
    if (row) row.el.classList.add('show-time');
  }

  /** Focus `el` without that showing a toolbar. */
  focusQuietly(el) {
    this.quiet = true;
    try {
      el.focus({ preventScroll: true });
    } finally {
      this.quiet = false;
    }
  }

  /** Permissions changed (administrator flag, room owner): rebuild the shown toolbar. */
  refresh() {
    const a = this.active;
    if (!a || this.pinned) return;
    const focused = a.bar.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    this.show(a.row, a.tapped);
    if (focused && this.active) {
      const bar = this.active.bar;
      const target = bar.querySelector(`button[data-action="${focused}"]`) || bar.querySelector('button');
      if (target) target.focus({ preventScroll: true });
    }
  }

  /** A row is going away or turning into a tombstone. */
  forget(row) {
    if (this.active && this.active.row === row) {
      this.pinned = 0;
      this.hide();
    }
    if (this.hovered === row) this.hovered = null;
    if (this.timeRow === row) this.revealTime(null);
    if (row.editor && row.msg.deleted) {
      // Deleted (elsewhere, or by a moderator) while being edited: the typed text is not lost.
      const text = row.editor.input.value;
      const hadFocus = row.editor.el.contains(document.activeElement);
      this.closeEditor(row, false, { moveFocus: false });
      if (this.o.onEditLost) this.o.onEditLost(text, hadFocus);
    } else if (row.editor) {
      this.closeEditor(row, false);
    }
  }

  async run(action, row, btn) {
    const s = this.log.current;
    if (!s) return;
    switch (action) {
      case 'reply':
        this.hideAfterUse(row);
        this.o.onReply(s, row);
        break;
      case 'react':
        // A second press closes the picker (and its onClose lets go of the toolbar).
        if (btn.getAttribute('aria-expanded') !== 'true') this.pinned++;
        openEmojiPicker(btn, (emoji) => {
          // Picked with the keyboard, the focus is back on "Add reaction": the toolbar stays
          // with it (as after Escape). Picked with a pointer, the toolbar has done its job.
          if (this.input !== 'keyboard' || document.activeElement !== btn) this.hideAfterUse(row);
          this.o.onReact(s, row, emoji, true);
        }, {
          label: 'Choose a reaction',
          align: row.own ? 'end' : 'start',
          onClose: () => {
            this.pinned = Math.max(0, this.pinned - 1);
            this.releaseSoon();
          },
        });
        break;
      case 'edit':
        this.startEdit(row);
        break;
      case 'link':
        if (this.o.onCopyLink) this.o.onCopyLink(s, row, btn);
        break;
      case 'delete':
        this.pinned++;
        try {
          await this.o.onDelete(s, row);
        } finally {
          this.pinned = Math.max(0, this.pinned - 1);
          this.releaseSoon();
        }
        break;
      default:
    }
  }

  /** After "Reply" or a picked reaction the toolbar has done its job. */
  hideAfterUse(row) {
    const a = this.active;
    if (a && a.row === row) a.tapped = false;
    this.hovered = null;
    this.hide();
  }

  // ---- pointer and keyboard ----------------------------------------------------------------

  onFocusIn(e) {
    const row = this.rowAt(e.target);
    if (!row) return;
    const s = this.log.current;
    if (s && row.id != null && s.byId.get(row.id) === row) this.log.setRoving(s, row, true);
    if (this.quiet) return;
    // A tap focuses the row before its click: the click toggles the toolbar.
    if (e.target === row.el && this.touching()) return;
    this.claim(row, 'focus');
  }

  onClick(e) {
    const target = e.target instanceof Element ? e.target : null;
    if (!target) return;
    const chip = target.closest('.reaction');
    if (chip) {
      const row = this.rowAt(chip);
      const s = this.log.current;
      if (row && s && !row.msg.deleted) this.o.onReact(s, row, chip.dataset.emoji, chip.getAttribute('aria-pressed') !== 'true');
      return;
    }
    const quote = target.closest('.msg-quote');
    if (quote) {
      const row = this.rowAt(quote);
      const s = this.log.current;
      if (row && s && row.msg.reply_to) this.o.onQuote(s, row);
      return;
    }
    if (target.closest(INTERACTIVE)) return;
    const row = this.rowAt(target);
    if (!row || !this.touching()) return;
    // A tap on a message shows its toolbar and its time; a second tap hides them.
    const a = this.active;
    if ((a && a.row === row && a.tapped) || (this.timeRow === row && !(a && a.row === row))) {
      if (a && a.row === row) {
        a.tapped = false;
        this.hide();
      }
      this.revealTime(null);
    } else if (!this.pinned) {
      // The time first: the toolbar is placed around the message as it will be shown.
      this.revealTime(row);
      if (a && a.row === row) a.tapped = true;
      else this.show(row, true);
    }
  }

  /** Was the last thing the reader did a touch (or a pen)? */
  touching() {
    return this.input === 'touch' || this.input === 'pen';
  }

  onKey(e) {
    const row = this.rowAt(e.target);
    if (!row || e.target !== row.el || e.altKey || e.ctrlKey || e.metaKey) return;
    const s = this.log.current;
    if (!s) return;
    const rows = s.confirmed;
    const i = rows.indexOf(row);
    let next = null;
    switch (e.key) {
      case 'ArrowUp': next = i > 0 ? rows[i - 1] : null; break;
      case 'ArrowDown': next = i >= 0 && i < rows.length - 1 ? rows[i + 1] : null; break;
      case 'Home': next = rows[0] || null; break;
      case 'End': next = rows[rows.length - 1] || null; break;
      case 'Escape':
        if (this.active && this.active.row === row) {
          e.preventDefault();
          this.active.tapped = false;
          this.hide();
        }
        return;
      default: return;
    }
    e.preventDefault();
    if (next) next.el.focus();
    else if (e.key === 'ArrowUp' && i === 0) this.log.loadOlder();
  }

  // ---- editing --------------------------------------------------------------------------

  /**
   * Turn `row` into an editor prefilled with its text. Enter saves, Shift+Enter is a new line,
   * Escape cancels. `returnTo` gets focus back when the editor closes (default: the row).
   */
  startEdit(row, { returnTo = null } = {}) {
    if (row.msg.deleted || row.id == null) return;
    if (row.editor) {
      row.editor.input.focus();
      return;
    }
    if (this.editing && this.editing !== row) this.closeEditor(this.editing, false);
    if (this.active && this.active.row === row) {
      this.active.tapped = false;
      this.hide();
    }
    const hintId = `edit-hint-${row.id}`;
    const input = h('textarea', {
      class: 'msg-editor-input',
      'aria-label': 'Edit message',
      'aria-describedby': hintId,
      dir: 'auto',
      rows: 1,
      autocomplete: 'off',
      spellcheck: 'true',
    });
    input.value = row.msg.body;
    const error = h('p', { class: 'msg-editor-error', role: 'alert' });
    const status = h('p', { class: 'visually-hidden', role: 'status' });
    const note = h('p', { class: 'msg-editor-note', role: 'status' });
    const cancel = h('button', { type: 'button', class: 'btn btn-ghost btn-sm' }, 'Cancel');
    const save = h('button', { type: 'button', class: 'btn btn-primary btn-sm' }, 'Save');
    const el = h('div', { class: 'msg-editor' },
      input,
      error,
      status,
      note,
      h('div', { class: 'msg-editor-foot' },
        h('p', { class: 'msg-editor-hint', id: hintId },
          h('kbd', null, 'Enter'), ' to save · ', h('kbd', null, 'Shift'), ' + ', h('kbd', null, 'Enter'), ' for a new line · ',
          h('kbd', null, 'Esc'), ' to cancel'),
        h('div', { class: 'msg-editor-buttons' }, cancel, save)));
    const editor = { el, input, error, status, note, save, nonce: null, returnTo };
    row.editor = editor;
    this.editing = row;

    input.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        this.closeEditor(row, true);
      } else if (e.key === 'Enter' && !e.shiftKey && !e.altKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        this.saveEdit(row);
      }
    });
    input.addEventListener('input', () => {
      if (!editor.nonce) error.textContent = '';
      autosize(input);
      // Growing, the editor keeps its Save and Cancel in view (above the message box).
      requestAnimationFrame(() => {
        if (row.editor === editor) this.log.scrollIntoLog(editor.el.querySelector('.msg-editor-buttons'), 'nearest');
      });
    });
    cancel.addEventListener('click', () => this.closeEditor(row, true));
    save.addEventListener('click', () => this.saveEdit(row));

    row.bubbleEl.hidden = true;
    row.bubbleEl.after(el);
    row.el.classList.add('is-editing');
    autosize(input);
    input.focus({ preventScroll: true });
    input.setSelectionRange(input.value.length, input.value.length);
    this.log.scrollIntoLog(el, 'nearest');
  }

  saveEdit(row) {
    const ed = row.editor;
    const s = this.log.current;
    if (!ed || ed.nonce || !s) return;
    const body = ed.input.value.trim();
    if (!body && !row.msg.attachments?.length) {
      this.editFailed(row, 'A message can’t be empty. To remove it, use Delete instead.');
      return;
    }
    const n = charCount(body);
    if (n > MAX_CHARS) {
      this.editFailed(row, `That is too long: ${n.toLocaleString()} characters, the limit is ${MAX_CHARS.toLocaleString()}.`);
      return;
    }
    if (body === row.msg.body) {
      this.closeEditor(row, true);
      return;
    }
    const result = this.o.onEdit(s, row, body);
    if (result && result.error) {
      this.editFailed(row, result.error);
      return;
    }
    ed.nonce = result && result.nonce;
    ed.body = body;
    ed.input.readOnly = true;
    ed.save.disabled = true;
    ed.error.textContent = '';
    ed.status.textContent = 'Saving…';
    row.el.classList.add('is-saving');
  }

  /**
   * The message being edited was edited elsewhere meanwhile (another device, another tab): say
   * so, politely, before Save replaces that version with the text here.
   */
  changedElsewhere(row) {
    const ed = row.editor;
    if (!ed || ed.nonce) return;
    ed.note.textContent = 'This message was edited elsewhere while you were editing. Save replaces that version with yours.';
  }

  /** The server refused the edit (or it could not be sent): say why, keep the text. */
  editFailed(row, text) {
    const ed = row.editor;
    if (!ed) return;
    ed.nonce = null;
    ed.input.readOnly = false;
    ed.save.disabled = false;
    ed.status.textContent = '';
    row.el.classList.remove('is-saving');
    ed.error.textContent = '';
    // A fresh text node each time, so the same refusal is announced again.
    requestAnimationFrame(() => { ed.error.textContent = text; });
    ed.input.focus({ preventScroll: true });
  }

  /**
   * Another room is shown (or none): the open editor is cancelled, as Escape would, so that
   * the message shows as it is when its room is shown again. An editor whose edit was sent
   * and not answered yet stays (unless `all`, at sign-out): a refusal then shows in it, with
   * the text, when its room is shown again.
   */
  cancelEdit({ all = false } = {}) {
    const row = this.editing;
    if (!row || (!all && row.editor && row.editor.nonce)) return;
    this.closeEditor(row, false, { moveFocus: false });
  }

  /** The edit with this nonce was stored: close its editor. */
  editSaved(row, nonce) {
    const ed = row.editor;
    if (ed && ed.nonce && ed.nonce === nonce) this.closeEditor(row, true);
  }

  /**
   * Close the editor of `row`, keeping the message as it is. Focus goes back (to `returnTo` or
   * the row) when `restoreFocus` or when the editor had it, unless `moveFocus` is false: the
   * caller decides where it goes.
   */
  closeEditor(row, restoreFocus, { moveFocus = true } = {}) {
    const ed = row.editor;
    if (!ed) return;
    const hadFocus = ed.el.contains(document.activeElement);
    row.editor = null;
    if (this.editing === row) this.editing = null;
    ed.el.remove();
    row.bubbleEl.hidden = false;
    row.el.classList.remove('is-editing', 'is-saving');
    if (!moveFocus || (!restoreFocus && !hadFocus)) return;
    const target = ed.returnTo && ed.returnTo.isConnected && !ed.returnTo.disabled ? ed.returnTo : row.el;
    if (target.isConnected) target.focus({ preventScroll: true });
  }
}

/** Grow the editor with its text (CSS `field-sizing` where the browser has it). */
function autosize(input) {
  if (window.CSS && CSS.supports && CSS.supports('field-sizing', 'content')) return;
  input.rows = 1;
  let rows = 1;
  while (input.scrollHeight > input.clientHeight + 1 && rows < 12) {
    rows += 1;
    input.rows = rows;
  }
}
