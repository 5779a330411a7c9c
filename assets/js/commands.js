// Slash commands in the message box: `/me`, `/topic` and `/invite`.
//
// Typing `/` at the start of the box opens a listbox "Commands" (the combobox pattern, as for
// @mentions: the text box keeps focus and points at the active option): Up and Down move,
// Enter or Tab completes the chosen command, Escape closes the list.
//
// When the box is sent: `/me TEXT` goes out as an ordinary message whose body is exactly
// `/me TEXT` (bots and other clients see the command; this page shows it as an action line,
// "* alice TEXT"); `/topic TEXT` and `/invite NAME` call the HTTP API and send nothing; any
// other `/word` is refused ("Unknown command /word") and `//text` sends `/text`.

import { api, ApiError } from './api.js';
import { $, h, setText } from './dom.js';
import { autoDir, renderMarkdown } from './markdown.js';

/** The commands, in the order the list shows them. */
export const COMMANDS = [
  { name: 'me', usage: '/me waves', help: 'Send an action: /me waves' },
  { name: 'topic', usage: '/topic New topic', help: 'Set the room topic' },
  { name: 'invite', usage: '/invite bob', help: 'Add someone to this room' },
];

const TYPING = /^\/([A-Za-z]*)$/;
const COMMAND = /^\/(\S+)(?:\s+([\s\S]*))?$/;
const ACTION = /^\/me\s+(\S[\s\S]*)$/;

/**
 * What sending `body` (trimmed, not empty) means:
 * { send } a message body to send, { error } a refusal to show (nothing is sent), or
 * { command, arg } a command to run.
 */
export function interpret(body) {
  if (!body.startsWith('/')) return { send: body };
  if (body.startsWith('//')) return { send: body.slice(1) };
  const m = COMMAND.exec(body);
  if (!m) return { send: body };
  const name = m[1];
  const arg = (m[2] || '').trim();
  const cmd = COMMANDS.find((c) => c.name === name.toLowerCase());
  if (!cmd) return { error: `Unknown command /${name}. Commands: /me, /topic, /invite (start with // to send a message beginning with /).` };
  switch (cmd.name) {
    case 'me':
      return arg ? { send: `/me ${arg}` } : { error: 'Write what you do after /me, for example: /me waves' };
    case 'invite': {
      const who = arg.replace(/^@/, '');
      if (!who || /\s/.test(who)) return { error: 'Name one person to add: /invite bob' };
      return { command: 'invite', arg: who };
    }
    default:
      return { command: cmd.name, arg };
  }
}

/** The action of a `/me TEXT` body (TEXT), or null for any other body. */
export function actionText(body) {
  const m = ACTION.exec(String(body || ''));
  return m ? m[1] : null;
}

/** A `/me` message as its body element: "* alice TEXT", the text rendered as Markdown. */
export function actionBody(user, text, me) {
  const blocks = renderMarkdown(text, me);
  const actor = h('span', { class: 'msg-action-actor' }, `* ${user} `);
  const first = blocks[0];
  if (first && first.nodeName === 'P') first.prepend(actor);
  else blocks.unshift(h('p', null, actor));
  return autoDir(h('div', { class: 'msg-body msg-action' }, blocks));
}

/** Run `/topic` or `/invite` in `room` ({ name, kind }); resolves to { error } or { info }. */
export async function runCommand(command, arg, room) {
  const isDm = room.kind === 'dm';
  try {
    if (command === 'topic') {
      if (isDm) return { error: 'A direct message has no topic.' };
      await api.updateRoom(room.name, { topic: arg });
      return { info: arg ? `Topic set to “${arg}”.` : 'Topic cleared.' };
    }
    if (isDm) return { error: 'People can’t be added to a direct message. Start a new conversation with everyone instead.' };
    await api.invite(room.name, arg);
    return { info: `${arg} was added to #${room.name}.` };
  } catch (err) {
    if (!(err instanceof ApiError)) return { error: 'Something went wrong. Please try again.' };
    if (err.code === 'unknown_user') return { error: `There is nobody called ${arg}.` };
    if (err.code === 'forbidden' && command === 'topic') return { error: `You may not change the topic of #${room.name}. ${err.message}` };
    return { error: err.message };
  }
}

/** The list of commands under the message box while `/…` is typed at its start. */
export class CommandAutocomplete {
  /** @param {HTMLTextAreaElement} input  the message box */
  constructor(input) {
    this.input = input;
    this.items = [];
    this.active = -1;
    this.open = false;
    this.dismissed = null; // the text the list was closed on with Escape
    this.list = h('ul', {
      id: 'command-list', class: 'mention-list command-list', role: 'listbox', 'aria-label': 'Commands', hidden: true,
    });
    this.status = h('p', { class: 'visually-hidden', 'aria-live': 'polite' });
    const anchor = $('#mention-list');
    anchor.after(this.list, this.status);
    input.addEventListener('input', () => this.update());
    input.addEventListener('blur', () => setTimeout(() => {
      if (document.activeElement !== input) this.close();
    }, 100));
    this.list.addEventListener('pointerdown', (e) => e.preventDefault());
  }

  /** A key in the message box; true when it was used here. */
  onKeyDown(e) {
    if (!this.open) return false;
    switch (e.key) {
      case 'ArrowDown':
      case 'ArrowUp':
        this.move(e.key === 'ArrowDown' ? 1 : -1);
        break;
      case 'Enter':
      case 'Tab':
        if (e.shiftKey || this.active < 0) return false;
        this.choose(this.items[this.active]);
        break;
      case 'Escape':
        this.dismissed = this.input.value;
        this.close();
        break;
      default:
        return false;
    }
    e.preventDefault();
    e.stopPropagation();
    return true;
  }

  update() {
    const el = this.input;
    const m = el.selectionStart === el.value.length ? TYPING.exec(el.value) : null;
    if (!m || el.value === this.dismissed) return this.close();
    this.dismissed = null;
    const q = m[1].toLowerCase();
    const found = COMMANDS.filter((c) => c.name.startsWith(q));
    if (!found.length) return this.close();
    this.render(found);
    return undefined;
  }

  render(found) {
    const previous = this.active >= 0 ? this.items[this.active] : null;
    this.items = found;
    const keep = previous ? found.indexOf(previous) : -1;
    this.active = keep >= 0 ? keep : 0;
    this.list.replaceChildren(...found.map((c, i) => h('li', {
      id: `command-option-${i}`,
      role: 'option',
      class: 'mention-option command-option',
      'aria-selected': i === this.active ? 'true' : 'false',
      onclick: () => this.choose(c),
    }, h('span', { class: 'command-name' }, `/${c.name}`), ' ', h('span', { class: 'command-help' }, c.help))));
    this.list.hidden = false;
    this.open = true;
    this.input.setAttribute('aria-controls', this.list.id);
    this.input.setAttribute('aria-activedescendant', `command-option-${this.active}`);
    setText(this.status, `${found.length} command${found.length === 1 ? '' : 's'}. Up and down arrows to choose, Enter to complete.`);
  }

  move(delta) {
    if (!this.items.length) return;
    this.active = (this.active + delta + this.items.length) % this.items.length;
    for (const [i, li] of Array.from(this.list.children).entries()) {
      li.setAttribute('aria-selected', i === this.active ? 'true' : 'false');
    }
    this.input.setAttribute('aria-activedescendant', `command-option-${this.active}`);
  }

  choose(c) {
    if (!c) return;
    const el = this.input;
    el.value = `/${c.name} `;
    el.setSelectionRange(el.value.length, el.value.length);
    this.close();
    el.focus();
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }

  close() {
    if (!this.open && this.list.hidden) return;
    this.open = false;
    this.items = [];
    this.active = -1;
    this.list.hidden = true;
    this.list.replaceChildren();
    if (this.input.getAttribute('aria-controls') === this.list.id) {
      this.input.removeAttribute('aria-activedescendant');
      this.input.removeAttribute('aria-controls');
    }
    setText(this.status, '');
  }
}
