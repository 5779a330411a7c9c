// The modal dialogs: create a room, browse public rooms, start a direct
// message, room details (members, invite, rename/topic, notification level,
// leave) and the confirmation asked before something that cannot be undone.
// (The account's own settings are in settings.js.) Each is a <dialog>: Escape closes it, focus
// moves into it and back to where it was.

import { api, ApiError } from './api.js';
import { $, h, setText } from './dom.js';
import { HooksPanel } from './hooks.js';
import { personAvatar, personParts } from './profiles.js';

let focusFallback = null;

/**
 * Where the focus goes when a dialog closes and the element that opened it cannot take it
 * back (it is gone, it sits in the closed drawer, or nothing had the focus) and nothing else
 * took it meanwhile.
 */
export function setDialogFocusFallback(fn) {
  focusFallback = fn;
}

/**
 * `btn` had the focus (`hadFocus`) before it was disabled for a while, which dropped the focus
 * on the page's body: it takes it back, unless something else took it meanwhile or its dialog
 * closed.
 */
export function keepFocus(btn, hadFocus) {
  const now = document.activeElement;
  if (!hadFocus || (now && now !== document.body) || !btn.isConnected || btn.disabled) return;
  const dialog = btn.closest('dialog');
  if (dialog && !dialog.open) return;
  btn.focus({ preventScroll: true });
}

/** Open a modal <dialog>, focus `focusEl` and give focus back on close. */
export function openDialog(dialog, focusEl) {
  if (dialog.open) return;
  const opener = document.activeElement;
  dialog.showModal();
  const target = focusEl || dialog.querySelector('input, select, textarea, button');
  if (target) target.focus();
  dialog.addEventListener('close', () => {
    if (opener && opener !== document.body && opener.isConnected && typeof opener.focus === 'function'
        && !opener.closest('[inert]') && opener.getClientRects().length > 0) {
      opener.focus({ preventScroll: true });
      if (document.activeElement === opener) return;
    }
    // Lost: on the page's body, or still inside the closed dialog (a browser may leave it on
    // the button that closed it until the next frame, then on the body).
    const now = document.activeElement;
    const lost = !now || now === document.body || dialog.contains(now) || now.getClientRects().length === 0;
    if (lost && focusFallback && !document.querySelector('dialog[open]')) focusFallback();
  }, { once: true });
}

/** Wire the parts every dialog shares: [data-close] buttons, a click on the backdrop. */
export function wireDialog(dialog) {
  for (const btn of dialog.querySelectorAll('[data-close]')) {
    btn.addEventListener('click', () => dialog.close());
  }
  // A click on the backdrop lands on the <dialog> element itself.
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog) dialog.close();
  });
}

/**
 * Ask before something that cannot be undone, in the page's confirmation dialog. Resolves to
 * true when the reader chose `ok`; "Cancel", Escape or a click outside resolve to false.
 * `quote` (optional) shows what the action is about, as plain text.
 * @param {{title: string, text: string, quote?: string, ok: string}} o
 */
export function confirmAction({ title, text, quote = '', ok }) {
  const dialog = $('#confirm-dialog');
  if (!dialog || typeof dialog.showModal !== 'function') {
    return Promise.resolve(window.confirm(`${title}\n\n${text}`));
  }
  if (dialog.open) dialog.close();
  setText($('#confirm-dialog-title'), title);
  setText($('#confirm-dialog-text'), text);
  const q = $('#confirm-dialog-quote');
  setText(q, quote);
  q.hidden = !quote;
  setText($('#confirm-dialog-ok'), ok);
  return new Promise((resolve) => {
    dialog.returnValue = 'cancel';
    openDialog(dialog, $('#confirm-dialog-cancel'));
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

const errorText = (err, fallback) => (err instanceof ApiError ? err.message : fallback);

export class Dialogs {
  constructor(app) {
    this.app = app;
    this.all = ['#create-room-dialog', '#directory-dialog', '#dm-dialog', '#room-dialog', '#confirm-dialog'].map((s) => $(s));
    for (const d of this.all) wireDialog(d);
    this.directory = [];
    this.roomDialogFor = '';
    this.leaveArmed = false;

    $('#create-room').addEventListener('click', () => this.openCreate());
    $('#browse-rooms').addEventListener('click', () => this.openDirectory());
    $('#new-dm').addEventListener('click', () => this.openDm());
    $('#room-settings').addEventListener('click', () => this.openRoomDialog());
    $('#room-members').addEventListener('click', () => this.openRoomDialog('members'));
    $('#room-invite').addEventListener('click', () => this.openRoomDialog('invite'));

    $('#create-room-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.createRoom();
    });
    $('#create-room-name').addEventListener('input', (e) => e.target.removeAttribute('aria-invalid'));
    $('#directory-filter').addEventListener('input', () => this.renderDirectory());
    $('#dm-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.submitDm();
    });
    $('#dm-users').addEventListener('input', () => this.renderDmSuggestions());
    $('#room-edit-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.saveRoom();
    });
    $('#invite-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.invite();
    });
    for (const radio of document.querySelectorAll('input[name="notify-level"]')) {
      radio.addEventListener('change', () => this.setLevel(radio.value));
    }
    $('#room-leave').addEventListener('click', () => this.leave());
    this.hooks = new HooksPanel(app, () => app.store.get(this.roomDialogFor));
    $('#room-dialog').addEventListener('close', () => {
      this.hooks.close();
      this.roomDialogFor = '';
      this.disarmLeave();
    });
  }

  closeAll() {
    for (const d of this.all) if (d.open) d.close();
  }

  // ---- create a room ----------------------------------------------------------

  openCreate() {
    $('#create-room-form').reset();
    setText($('#create-room-error'), '');
    $('#create-room-name').removeAttribute('aria-invalid');
    openDialog($('#create-room-dialog'), $('#create-room-name'));
  }

  async createRoom() {
    const form = $('#create-room-form');
    const nameEl = $('#create-room-name');
    const name = nameEl.value.trim().toLowerCase();
    const topic = $('#create-room-topic').value.trim();
    const isPublic = form.querySelector('input[name="visibility"]:checked').value === 'public';
    const errEl = $('#create-room-error');
    if (!name) {
      setText(errEl, 'Give the room a name.');
      nameEl.setAttribute('aria-invalid', 'true');
      nameEl.focus();
      return;
    }
    const submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    setText(errEl, '');
    try {
      const data = await api.createRoom({ name, topic, public: isPublic });
      const room = data && data.room;
      if (!room) throw new ApiError(0, 'bad_answer', 'The server gave an unexpected answer.');
      this.app.store.upsert(room);
      $('#create-room-dialog').close();
      this.app.render();
      await this.app.openRoom(room.name);
      this.app.announce(`Room #${room.name} created.`);
      this.app.focusConversation();
    } catch (err) {
      setText(errEl, errorText(err, 'Could not create the room.'));
      if (err instanceof ApiError && ['invalid_room_name', 'room_exists'].includes(err.code)) {
        nameEl.setAttribute('aria-invalid', 'true');
        nameEl.focus();
      }
    } finally {
      submit.disabled = false;
    }
  }

  // ---- the directory ----------------------------------------------------------------

  async openDirectory() {
    $('#directory-filter').value = '';
    setText($('#directory-error'), '');
    setText($('#directory-status'), 'Loading rooms…');
    $('#directory-list').replaceChildren();
    openDialog($('#directory-dialog'), $('#directory-filter'));
    try {
      const data = await api.directory();
      this.directory = (data && Array.isArray(data.rooms)) ? data.rooms : [];
      this.renderDirectory();
    } catch (err) {
      setText($('#directory-status'), '');
      setText($('#directory-error'), errorText(err, 'Could not load the public rooms.'));
    }
  }

  /** A `room_created` frame: a new public room exists. */
  directoryChanged(room) {
    if (!room || !room.name) return;
    const i = this.directory.findIndex((r) => r.name === room.name);
    const joined = this.app.store.has(room.name);
    if (i >= 0) this.directory[i] = { ...this.directory[i], ...room, joined };
    else this.directory.push({ ...room, joined });
    if ($('#directory-dialog').open) this.renderDirectory();
  }

  renderDirectory() {
    const q = $('#directory-filter').value.trim().toLowerCase();
    const rooms = this.directory
      .filter((r) => !q || r.name.includes(q) || String(r.topic || '').toLowerCase().includes(q))
      .sort((a, b) => a.name.localeCompare(b.name));
    setText($('#directory-status'), rooms.length
      ? `${rooms.length} public room${rooms.length === 1 ? '' : 's'}`
      : q ? 'No public room matches.' : 'There are no public rooms yet.');
    $('#directory-list').replaceChildren(...rooms.map((r) => {
      const joined = this.app.store.has(r.name) || r.joined === true;
      const members = Number.isFinite(r.members) ? `${r.members} member${r.members === 1 ? '' : 's'}` : '';
      return h('li', { class: 'directory-item' },
        h('div', { class: 'directory-main' },
          h('p', { class: 'directory-name' }, `#${r.name}`),
          r.topic ? h('p', { class: 'directory-topic', dir: 'auto' }, r.topic) : null,
          members ? h('p', { class: 'directory-meta' }, members) : null),
        h('div', { class: 'directory-actions' },
          joined
            ? h('button', { type: 'button', class: 'btn btn-secondary btn-sm', 'aria-label': `Open #${r.name}`, onclick: () => this.openFromDirectory(r.name) }, 'Open')
            : [
              h('button', { type: 'button', class: 'btn btn-ghost btn-sm', 'aria-label': `Preview #${r.name}`, onclick: () => this.openFromDirectory(r.name) }, 'Preview'),
              h('button', { type: 'button', class: 'btn btn-primary btn-sm', 'aria-label': `Join #${r.name}`, onclick: (e) => this.join(r.name, e.currentTarget) }, 'Join'),
            ]));
    }));
  }

  async openFromDirectory(name) {
    $('#directory-dialog').close();
    await this.app.openRoom(name);
    this.app.focusConversation();
  }

  async join(name, btn) {
    btn.disabled = true;
    setText($('#directory-error'), '');
    try {
      const data = await api.join(name);
      if (data && data.room) this.app.store.upsert(data.room);
      else this.app.store.upsert({ name });
      $('#directory-dialog').close();
      this.app.render();
      await this.app.openRoom(name);
      this.app.announce(`You joined #${name}.`);
      this.app.focusConversation();
    } catch (err) {
      btn.disabled = false;
      setText($('#directory-error'), errorText(err, `Could not join #${name}.`));
    }
  }

  // ---- direct messages ------------------------------------------------------------

  openDm(prefill = '') {
    $('#dm-users').value = prefill;
    setText($('#dm-error'), '');
    this.renderDmSuggestions();
    openDialog($('#dm-dialog'), $('#dm-users'));
  }

  dmNames() {
    return $('#dm-users').value.split(/[\s,;]+/).map((s) => s.replace(/^@/, '').trim()).filter(Boolean);
  }

  renderDmSuggestions() {
    const chosen = new Set(this.dmNames().map((n) => n.toLowerCase()));
    const me = this.app.me ? this.app.me.username.toLowerCase() : '';
    const people = new Map();
    const add = (n) => {
      const k = String(n).toLowerCase();
      if (k !== me && !people.has(k)) people.set(k, String(n));
    };
    this.app.online.names().forEach(add);
    for (const list of this.app.members.values()) for (const m of list) add(m.username);
    this.app.store.knownUsers().forEach(add);
    const names = Array.from(people.values()).sort((a, b) => a.localeCompare(b, undefined, { sensitivity: 'base' })).slice(0, 24);
    $('#dm-suggest-wrap').hidden = names.length === 0;
    $('#dm-suggest').replaceChildren(...names.map((name) => {
      const on = chosen.has(name.toLowerCase());
      return h('li', null, h('button', {
        type: 'button',
        class: 'suggest-btn',
        'aria-pressed': on ? 'true' : 'false',
        onclick: () => this.toggleDmName(name),
      }, personAvatar(name, this.app.profiles, 'xs'), h('span', { dir: 'auto' }, personParts(name, this.app.profiles).name),
      personParts(name, this.app.profiles).handle ? h('span', { class: 'suggest-handle' }, ` @${name}`) : null));
    }));
  }

  toggleDmName(name) {
    const names = this.dmNames();
    const key = name.toLowerCase();
    const has = names.some((n) => n.toLowerCase() === key);
    const next = has ? names.filter((n) => n.toLowerCase() !== key) : names.concat(name);
    $('#dm-users').value = next.join(', ');
    this.renderDmSuggestions();
  }

  async submitDm() {
    const names = this.dmNames();
    const errEl = $('#dm-error');
    if (!names.length) {
      setText(errEl, 'Enter at least one username.');
      $('#dm-users').focus();
      return;
    }
    const submit = $('#dm-form').querySelector('button[type="submit"]');
    submit.disabled = true;
    setText(errEl, '');
    const problem = await this.app.startDm(names);
    submit.disabled = false;
    if (problem) {
      this.app.showRoomError('');
      setText(errEl, problem);
      $('#dm-users').focus();
    } else {
      // The dialog gives the focus back to what opened it as it closes (the `close` event comes
      // after close() returns): only then does the conversation take it.
      const dialog = $('#dm-dialog');
      if (dialog.open) {
        const closed = new Promise((resolve) => dialog.addEventListener('close', resolve, { once: true }));
        dialog.close();
        await closed;
      }
      this.app.focusConversation();
    }
  }

  // ---- room details ------------------------------------------------------------------

  openRoomDialog(section = '') {
    const app = this.app;
    const room = app.store.get(app.current);
    if (!room) return;
    this.roomDialogFor = room.name;
    setText($('#room-dialog-error'), '');
    setText($('#invite-status'), '');
    $('#invite-user').value = '';
    this.disarmLeave();
    this.fillRoomDialog();
    const dialog = $('#room-dialog');
    const focus = section === 'invite' && room.kind !== 'dm' ? $('#invite-user') : null;
    openDialog(dialog, focus || $('#room-dialog-title'));
    this.hooks.open(room);
    if (section === 'members') $('#members-title').scrollIntoView({ block: 'start' });
    app.loadMembers(room.name);
  }

  fillRoomDialog() {
    const app = this.app;
    const room = app.store.get(this.roomDialogFor);
    if (!room) return;
    const isDm = room.kind === 'dm';
    const isGeneral = room.name === 'general';
    setText($('#room-dialog-title'), isDm ? app.store.title(room) : `#${room.name}`);
    const parts = [];
    if (isDm) parts.push(room.users.length > 2 ? 'Group conversation' : 'Direct message');
    else parts.push(room.public ? 'Public room' : 'Private room');
    if (room.created_by) parts.push(`created by ${room.created_by}`);
    setText($('#room-dialog-sub'), parts.join(' · '));

    const canRename = !isDm && !isGeneral && (app.isAdmin || (room.created_by && app.isMe(room.created_by)));
    // Any member may set a room's topic, except #general's (administrators only): who may
    // not sees the topic as text instead of an editor the server would refuse.
    const canEdit = !isDm && (!isGeneral || app.isAdmin);
    const editing = $('#room-edit-form').contains(document.activeElement);
    $('#room-edit-form').hidden = !canEdit && !editing;
    $('#room-about').hidden = isDm || canEdit || editing;
    setText($('#room-about-topic'), room.topic || 'No topic set.');
    $('#room-about-topic').classList.toggle('is-empty', !room.topic);
    setText($('#room-about-note'), isGeneral ? 'Only an administrator can change #general.' : '');
    $('#room-edit-name-field').hidden = !canRename;
    if (document.activeElement !== $('#room-edit-name')) $('#room-edit-name').value = room.name;
    if (document.activeElement !== $('#room-edit-topic')) $('#room-edit-topic').value = room.topic || '';
    $('#invite-form').hidden = isDm;
    for (const radio of document.querySelectorAll('input[name="notify-level"]')) radio.checked = radio.value === room.notify;
    $('#room-leave').hidden = isGeneral;
    if (!this.leaveArmed) setText($('#room-leave'), isDm ? 'Leave conversation' : 'Leave room');
    this.renderMembers();
  }

  renderMembers() {
    const app = this.app;
    const list = app.members.get(this.roomDialogFor);
    const el = $('#member-list');
    if (!list) {
      el.replaceChildren(h('li', { class: 'member-empty' }, 'Loading members…'));
      setText($('#members-title'), 'Members');
      return;
    }
    setText($('#members-title'), `Members (${list.length})`);
    const profiles = app.profiles;
    const shown = (u) => (profiles ? profiles.name(u) : String(u));
    const sorted = list.slice().sort((a, b) => (b.online - a.online) || shown(a.username).localeCompare(shown(b.username), undefined, { sensitivity: 'base' }));
    el.replaceChildren(...sorted.map((m) => {
      const me = app.isMe(m.username);
      const who = personParts(m.username, profiles);
      const label = who.handle ? `${who.name} (${who.handle})` : who.name;
      return h('li', { class: `member${m.online ? ' is-online' : ''}` },
        h('span', { class: 'person-avatar' }, personAvatar(m.username, profiles, 'sm'), m.online ? h('span', { class: 'presence-dot', 'aria-hidden': 'true' }) : null),
        h('span', { class: 'member-text' },
          h('span', { class: 'person-line' },
            h('span', { class: 'member-name', dir: 'auto' }, who.name),
            who.handle ? h('span', { class: 'person-handle' }, who.handle) : null),
          who.status ? h('span', { class: 'person-status member-status', dir: 'auto' }, who.status) : null),
        h('span', { class: 'member-state' }, me ? 'you' : m.online ? 'online' : 'offline'),
        me ? null : h('button', {
          type: 'button',
          class: 'link-btn',
          'aria-label': `Message ${label}`,
          onclick: () => {
            $('#room-dialog').close();
            app.startDm([m.username]);
          },
        }, 'Message'));
    }));
  }

  membersChanged(name) {
    if (name === this.roomDialogFor && $('#room-dialog').open) this.renderMembers();
  }

  roomChanged(name) {
    if (name === this.roomDialogFor && $('#room-dialog').open) this.fillRoomDialog();
  }

  roomRenamed(oldName, newName) {
    if (this.roomDialogFor === oldName) {
      this.roomDialogFor = newName;
      this.fillRoomDialog();
    }
  }

  roomGone(name) {
    if (this.roomDialogFor === name && $('#room-dialog').open) $('#room-dialog').close();
  }

  async saveRoom() {
    const app = this.app;
    const room = app.store.get(this.roomDialogFor);
    if (!room) return;
    const errEl = $('#room-dialog-error');
    setText(errEl, '');
    const body = {};
    const topic = $('#room-edit-topic').value.trim();
    if (topic !== (room.topic || '')) body.topic = topic;
    if (!$('#room-edit-name-field').hidden) {
      const name = $('#room-edit-name').value.trim().toLowerCase();
      if (name && name !== room.name) body.name = name;
    }
    if (!Object.keys(body).length) {
      setText(errEl, 'Nothing has changed.');
      return;
    }
    const btn = $('#room-edit-form').querySelector('button[type="submit"]');
    const hadFocus = document.activeElement === btn;
    btn.disabled = true;
    try {
      const data = await api.updateRoom(room.name, body);
      const updated = data && data.room;
      if (updated && updated.name && updated.name !== room.name) {
        app.onRoomUpdated({ type: 'room_updated', room: updated, old_name: room.name });
      } else if (updated) {
        app.onRoomUpdated({ type: 'room_updated', room: updated });
      }
      app.announce('Room details saved.');
      setText(errEl, '');
      this.fillRoomDialog();
    } catch (err) {
      setText(errEl, errorText(err, 'Could not save the room details.'));
    } finally {
      btn.disabled = false;
      // Disabled while saving, the button let go of the focus (to the page's body): it takes
      // it back while the dialog stays open.
      keepFocus(btn, hadFocus);
    }
  }

  async invite() {
    const app = this.app;
    const room = app.store.get(this.roomDialogFor);
    const input = $('#invite-user');
    const username = input.value.trim().replace(/^@/, '');
    const status = $('#invite-status');
    const errEl = $('#room-dialog-error');
    setText(errEl, '');
    if (!room) return;
    if (!username) {
      setText(errEl, 'Enter the username of the person to invite.');
      input.focus();
      return;
    }
    const btn = $('#invite-form').querySelector('button[type="submit"]');
    btn.disabled = true;
    try {
      const data = await api.invite(room.name, username);
      if (data && data.room) app.store.upsert(pickRoomFields(data.room));
      input.value = '';
      setText(status, `${username} is now a member of #${room.name}.`);
      await app.loadMembers(room.name);
      app.refreshHeader();
    } catch (err) {
      setText(status, '');
      setText(errEl, err instanceof ApiError && err.code === 'unknown_user'
        ? `There is no user called ${username}.`
        : errorText(err, 'Could not invite them.'));
      input.focus();
    } finally {
      btn.disabled = false;
    }
  }

  async setLevel(level) {
    const app = this.app;
    const room = app.store.get(this.roomDialogFor);
    if (!room) return;
    const errEl = $('#room-dialog-error');
    setText(errEl, '');
    const before = room.notify;
    room.notify = level;
    app.render();
    try {
      const data = await api.setNotify(room.name, level);
      if (data && data.room) app.store.upsert(data.room);
      app.render();
      app.announce(level === 'all' ? 'Notifications: every message.' : level === 'mentions' ? 'Notifications: mentions only.' : 'Room muted.');
    } catch (err) {
      room.notify = before;
      app.render();
      this.fillRoomDialog();
      setText(errEl, errorText(err, 'Could not change the notification level.'));
    }
  }

  disarmLeave() {
    this.leaveArmed = false;
    clearTimeout(this.leaveTimer);
    const btn = $('#room-leave');
    btn.classList.remove('is-armed');
    const room = this.app.store.get(this.roomDialogFor);
    setText(btn, room && room.kind === 'dm' ? 'Leave conversation' : 'Leave room');
  }

  async leave() {
    const app = this.app;
    const room = app.store.get(this.roomDialogFor);
    if (!room) return;
    const btn = $('#room-leave');
    if (!this.leaveArmed) {
      // A second press confirms (no blocking confirm() box).
      this.leaveArmed = true;
      btn.classList.add('is-armed');
      setText(btn, room.kind === 'dm' ? 'Press again to leave' : `Press again to leave #${room.name}`);
      clearTimeout(this.leaveTimer);
      this.leaveTimer = setTimeout(() => this.disarmLeave(), 5000);
      return;
    }
    btn.disabled = true;
    try {
      await api.leave(room.name);
      $('#room-dialog').close();
      app.onRoomLeft({ type: 'room_left', room: room.name });
      app.announce(`You left ${app.store.label(room)}.`);
    } catch (err) {
      setText($('#room-dialog-error'), errorText(err, 'Could not leave the room.'));
      this.disarmLeave();
    } finally {
      btn.disabled = false;
    }
  }

}

function pickRoomFields(r) {
  const out = { name: r.name };
  for (const k of ['topic', 'public', 'kind', 'members', 'users', 'created_by']) if (r[k] !== undefined) out[k] = r[k];
  return out;
}
