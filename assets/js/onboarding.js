// Getting started: the "Invite people" item of the account menu (for whoever may create invite
// links), the welcome shown to the administrator the setup link made ("You are the
// administrator", until they choose "Got it"), and the greeting an empty #general shows its
// first visitors, in the log itself, until the first message is written.

import { $, h } from './dom.js';
import { openDialog, wireDialog } from './dialogs.js';
import { InviteDialog } from './invite.js';

const GENERAL = 'general';

/** localStorage: `pending` from the setup registration until the welcome is dismissed. */
export function welcomeKey(username) {
  return `hearth.welcome.${String(username).toLowerCase()}`;
}

function storageGet(key) {
  try { return window.localStorage.getItem(key); } catch { return null; }
}

function storageSet(key, value) {
  try { window.localStorage.setItem(key, value); } catch { /* private mode: shown again */ }
}

const MODE_TEXT = {
  open: ['Registration is open:', ' anyone who has this site’s address can create an account.'],
  invite: ['Registration is invite only:', ' people need an invite link to create an account.'],
  closed: ['Registration is closed:', ' nobody can create an account until you open it.'],
};

export class Onboarding {
  /** @param {object} app the ChatView */
  constructor(app) {
    this.app = app;
    this.canInvite = false;
    this.isAdmin = false;
    this.me = '';
    this.invite = new InviteDialog({ isAdmin: () => this.isAdmin });
    this.menuItem = $('#invite-people-open');
    if (this.menuItem) this.menuItem.addEventListener('click', () => this.invite.open());
    this.buildWelcome();
    this.buildGreeting();
  }

  // ---- the administrator's welcome --------------------------------------------------------

  buildWelcome() {
    this.modeNote = h('p', { class: 'welcome-mode' });
    this.welcomeInvite = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Invite people');
    this.gotIt = h('button', { type: 'button', class: 'btn btn-primary' }, 'Got it');
    this.welcome = h('dialog', {
      id: 'welcome-dialog', class: 'dialog welcome-dialog',
      'aria-labelledby': 'welcome-title', 'aria-describedby': 'welcome-text',
    }, h('div', { class: 'dialog-body' },
      h('div', { class: 'welcome-mark', 'aria-hidden': 'true' }, '★'),
      h('h2', { id: 'welcome-title', class: 'dialog-title', tabindex: '-1' }, 'You are the administrator'),
      h('p', { id: 'welcome-text', class: 'dialog-sub' },
        'You created the first account on this Hearth server, so you run it: you decide who can join, and you look after the accounts.'),
      h('ul', { class: 'welcome-list' },
        h('li', null, this.modeNote),
        h('li', null, 'The ', h('a', { href: 'admin.html' }, 'administration page'),
          ' (also under “Administration” in the sidebar) is where you change who can join, create and revoke invite links, and manage accounts.'),
        h('li', null, 'Invite the first people with ', h('strong', null, 'Invite people'),
          ': a link and a QR code to share. You will find it again in your account menu.')),
      h('div', { class: 'dialog-actions' }, this.welcomeInvite, this.gotIt)));
    (document.getElementById('chat-view') || document.body).append(this.welcome);
    wireDialog(this.welcome);
    this.gotIt.addEventListener('click', () => this.dismissWelcome());
    this.welcomeInvite.addEventListener('click', () => {
      this.dismissWelcome();
      this.invite.open();
    });
  }

  dismissWelcome() {
    if (this.me) storageSet(welcomeKey(this.me), 'done');
    if (this.welcome.open) this.welcome.close();
  }

  async showWelcome() {
    let mode = '';
    try {
      const res = await fetch('api/registration', { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
      if (res.ok) mode = (await res.json()).mode;
    } catch { /* said without the mode */ }
    const [lead, rest] = MODE_TEXT[mode] || ['Who can join', ' is set on the administration page.'];
    this.modeNote.replaceChildren(h('strong', null, lead), rest);
    if (!this.app.root.hidden && !document.querySelector('dialog[open]')) {
      openDialog(this.welcome, this.gotIt);
    }
  }

  // ---- the greeting of an empty #general ----------------------------------------------------

  buildGreeting() {
    this.greetInvite = h('button', { type: 'button', class: 'btn btn-primary btn-sm', hidden: true }, 'Invite people');
    this.greetRoom = h('button', { type: 'button', class: 'btn btn-secondary btn-sm' }, 'Create a room');
    this.greeting = h('div', { id: 'log-welcome', class: 'log-welcome', hidden: true },
      h('div', { class: 'log-start-icon', 'aria-hidden': 'true' }, '👋'),
      h('p', { class: 'log-start-title' }, 'Welcome to #general'),
      h('p', { class: 'log-welcome-text' },
        'This is where everyone on this server meets, and nobody has written here yet. Say hello: write the first message in the box below.'),
      h('p', { class: 'log-welcome-text' }, 'Then bring people in, or start a room for a topic.'),
      h('div', { class: 'log-welcome-actions' }, this.greetInvite, this.greetRoom));
    this.greetInvite.addEventListener('click', () => this.invite.open());
    this.greetRoom.addEventListener('click', () => {
      const create = $('#create-room');
      if (create) create.click();
    });
    const start = $('#log-start');
    this.startEl = start;
    this.top = start ? start.parentElement : null;
    if (!this.top) return;
    start.after(this.greeting);
    const observer = new MutationObserver(() => this.updateGreeting());
    observer.observe($('#messages'), { childList: true, subtree: true });
    observer.observe(start, { attributes: true, attributeFilter: ['hidden'] });
  }

  /** Show the greeting while #general is shown, fully loaded and without a message. */
  updateGreeting() {
    const log = this.app.log;
    const s = log && log.current;
    const empty = Boolean(this.me) && Boolean(s) && s.room === GENERAL && !this.app.preview
      && s.loaded && s.reachedStart && s.confirmed.length === 0 && s.pending.length === 0
      && !this.startEl.hidden;
    if (this.greeting.hidden === !empty) return;
    this.greeting.hidden = !empty;
    this.top.classList.toggle('has-welcome', empty);
    const create = $('#create-room');
    this.greetRoom.hidden = !create || create.hidden;
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  /** After `/api/me`: what the signed-in person may do. */
  start(me) {
    this.me = me && me.user ? me.user.username : '';
    this.isAdmin = Boolean(me && me.is_admin);
    this.canInvite = Boolean(me && (me.can_invite || me.is_admin));
    if (this.menuItem) this.menuItem.hidden = !this.canInvite;
    this.greetInvite.hidden = !this.canInvite;
    this.updateGreeting();
    if (this.isAdmin && this.me && storageGet(welcomeKey(this.me)) === 'pending') this.showWelcome();
  }

  stop() {
    this.me = '';
    this.canInvite = false;
    this.isAdmin = false;
    if (this.menuItem) this.menuItem.hidden = true;
    this.invite.close();
    if (this.welcome.open) this.welcome.close();
    this.greeting.hidden = true;
    if (this.top) this.top.classList.remove('has-welcome');
  }
}
