// The chat view: wires the HTTP history, the WebSocket, the message log,
// the composer and the presence panel together.

import { api, ApiError } from './api.js';
import { $, h, setText } from './dom.js';
import { makeNonce, setAvatar } from './format.js';
import { MessageLog } from './log.js';
import { Composer } from './composer.js';
import { OnlineList, TypingIndicator } from './presence.js';
import { ChatSocket } from './socket.js';

const PAGE = 50;
const GAP_PAGE = 200;
const DEFAULT_ROOM = 'general';

const CONNECTION_TEXT = {
  connected: 'Connected',
  connecting: 'Connecting…',
  offline: 'Offline',
};

export class ChatView {
  /**
   * @param {object} o
   * @param {(notice?: string) => void} o.onSignedOut  show the sign-in view
   */
  constructor(o) {
    this.o = o;
    this.root = $('#chat-view');
    this.me = null;
    this.room = DEFAULT_ROOM;
    this.rooms = [];
    this.unreadByRoom = new Map();
    this.lastId = 0;       // highest message id seen, in any room
    this.socket = null;
    this.session = 0;      // bumps on every start/stop, to drop stale async results
    this.unseen = 0;       // for the tab title while hidden
    this.gapFilling = false;

    this.connEl = $('#conn');
    this.connText = $('#conn-text');
    this.onlineToggle = $('#online-toggle');
    this.onlinePanel = $('#online-panel');

    this.log = new MessageLog({
      logEl: $('#log'),
      listEl: $('#messages'),
      startEl: $('#log-start'),
      loaderEl: $('#log-loader'),
      loadBtn: $('#load-older'),
      loadingEl: $('#log-loading'),
      jumpBtn: $('#jump'),
      onLoadOlder: (before) => this.fetchOlder(before),
      onRetry: (nonce) => this.retry(nonce),
      onDiscard: (nonce) => {
        this.log.discard(nonce);
        this.composer.focus();
      },
    });

    this.composer = new Composer({
      form: $('#composer'),
      input: $('#composer-input'),
      button: $('#composer-send'),
      notice: $('#composer-notice'),
      counter: $('#composer-count'),
      onSend: (body) => this.send(body),
      onTyping: () => this.socket && this.socket.send({ type: 'typing', room: this.room }),
    });

    this.online = new OnlineList({
      listEl: $('#online-list'),
      countEls: [$('#online-count'), $('#online-toggle-count')],
    });
    this.typing = new TypingIndicator($('#typing'));

    $('#signout').addEventListener('click', () => this.signOut());

    // Narrow screens: the online panel opens as a sheet below the header.
    this.onlineToggle.addEventListener('click', () => this.setPanelOpen(!this.panelOpen));
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.panelOpen) {
        this.setPanelOpen(false);
        this.onlineToggle.focus();
      }
    });
    document.addEventListener('pointerdown', (e) => {
      if (this.panelOpen && !this.onlinePanel.contains(e.target) && !this.onlineToggle.contains(e.target)) {
        this.setPanelOpen(false);
      }
    });
    this.panelOpen = false;

    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.setUnseen(0);
    });
    window.addEventListener('focus', () => this.setUnseen(0));
  }

  // ---- lifecycle ---------------------------------------------------------------

  async start(user) {
    const session = ++this.session;
    this.me = user;
    this.room = DEFAULT_ROOM;
    this.lastId = 0;
    this.rooms = [{ name: DEFAULT_ROOM }];
    this.unreadByRoom.clear();
    this.gapFilling = false;

    this.root.hidden = false;
    document.body.classList.add('in-chat');
    setText($('#me-name'), user.username);
    setAvatar($('#me-avatar'), user.username);
    this.setConnection('connecting');
    this.setRoomHeader(DEFAULT_ROOM, '');
    this.renderRooms();
    this.online.setMe(user.username);
    this.online.reset([user.username]);
    this.typing.clear();
    this.composer.reset();
    this.composer.setRoom(this.room);
    this.log.reset({ room: this.room, me: user.username });
    this.composer.focus();

    // History first, then the socket (with ?since= the newest shown id).
    const ok = await this.loadHistory(session);
    if (!ok || session !== this.session) return;

    this.socket = new ChatSocket({
      url: (window.HEARTH && window.HEARTH.ws) || defaultWsUrl(),
      since: () => this.lastId,
      onFrame: (frame) => this.onFrame(frame),
      onState: (state) => this.setConnection(state),
      onSessionEnded: () => this.sessionEnded(),
      onConnectFailed: () => this.checkSession(session),
    });
    this.socket.start();
  }

  /** Tear everything down (no network calls). */
  stop() {
    this.session++;
    if (this.socket) this.socket.stop();
    this.socket = null;
    this.typing.clear();
    this.setPanelOpen(false);
    this.root.hidden = true;
    document.body.classList.remove('in-chat');
    this.setUnseen(0);
  }

  async loadHistory(session) {
    let delay = 1000;
    for (;;) {
      try {
        const data = await api.messages(this.room, { limit: PAGE });
        if (session !== this.session) return false;
        const messages = (data && data.messages) || [];
        for (const m of messages) this.noteId(m.id);
        this.log.setHistory(messages, messages.length < PAGE);
        return true;
      } catch (err) {
        if (session !== this.session) return false;
        if (err instanceof ApiError && err.isUnauthorized) {
          this.sessionEnded();
          return false;
        }
        this.setConnection('offline');
        await sleep(delay);
        if (session !== this.session) return false;
        this.setConnection('connecting');
        delay = Math.min(delay * 2, 15000);
      }
    }
  }

  async fetchOlder(before) {
    const session = this.session;
    const data = await api.messages(this.room, { before, limit: PAGE });
    if (session !== this.session) return { messages: [], reachedStart: false };
    const messages = (data && data.messages) || [];
    return { messages, reachedStart: messages.length < PAGE };
  }

  /** After a connection failed before `ready`: is the session still valid? */
  async checkSession(session) {
    try {
      await api.me();
    } catch (err) {
      if (session === this.session && err instanceof ApiError && err.isUnauthorized) this.sessionEnded();
    }
  }

  sessionEnded() {
    this.stop();
    this.o.onSignedOut('Your session has ended. Please sign in again.');
  }

  async signOut() {
    const btn = $('#signout');
    btn.disabled = true;
    if (this.socket) this.socket.stop();
    try {
      await api.logout();
    } catch {
      // Already signed out or unreachable: the session is gone for this page either way.
    }
    btn.disabled = false;
    this.stop();
    this.o.onSignedOut('');
  }

  // ---- frames ---------------------------------------------------------------------

  onFrame(frame) {
    switch (frame.type) {
      case 'ready': return this.onReady(frame);
      case 'message': return this.onMessage(frame);
      case 'presence': return this.online.set(frame.user, Boolean(frame.online));
      case 'typing':
        if (frame.room === this.room && this.me && String(frame.user).toLowerCase() !== this.me.username.toLowerCase()) {
          this.typing.add(frame.user);
        }
        return undefined;
      case 'resumed': return this.onResumed(frame);
      case 'error': return this.onError(frame);
      default: return undefined; // unknown frame types are ignored (forward compatible)
    }
  }

  onReady(frame) {
    if (frame.user && frame.user.username) {
      this.me = frame.user;
      setText($('#me-name'), frame.user.username);
      this.log.setMe(frame.user.username);
      this.online.setMe(frame.user.username);
    }
    if (Array.isArray(frame.rooms) && frame.rooms.length) {
      this.rooms = frame.rooms;
      const current = frame.rooms.find((r) => r.name === this.room);
      if (current) this.setRoomHeader(current.name, current.topic || '');
      this.renderRooms();
    }
    this.online.reset(Array.isArray(frame.online) ? frame.online : []);
    if (this.me && !this.online.has(this.me.username)) this.online.set(this.me.username, true);
    this.typing.clear();

    // Resend what never got acknowledged, with the same nonces: the server
    // stores nothing twice and echoes the stored message back.
    for (const m of this.log.unsent()) {
      this.socket.send({ type: 'send', room: m.room, body: m.body, nonce: m.nonce });
    }
  }

  onMessage(m) {
    if (typeof m.id !== 'number') return;
    this.noteId(m.id);
    if (m.room !== this.room) {
      this.unreadByRoom.set(m.room, (this.unreadByRoom.get(m.room) || 0) + 1);
      this.renderRooms();
      return;
    }
    this.typing.remove(m.user);
    const added = this.log.addMessages([m]);
    const own = this.me && String(m.user).toLowerCase() === this.me.username.toLowerCase();
    if (added && !own && document.visibilityState !== 'visible') this.setUnseen(this.unseen + 1);
  }

  async onResumed(frame) {
    if (frame.complete !== false) return;
    // More was missed than the server replays: page the rest over HTTP.
    if (this.gapFilling) return;
    this.gapFilling = true;
    const session = this.session;
    const head = Number(frame.head) || 0;
    let after = this.log.newestId || this.lastId;
    try {
      for (let i = 0; i < 1000 && after < head; i++) {
        const data = await api.messages(this.room, { after, limit: GAP_PAGE });
        if (session !== this.session) return;
        const messages = (data && data.messages) || [];
        if (!messages.length) break;
        for (const m of messages) this.noteId(m.id);
        this.log.addMessages(messages, { quiet: true });
        after = messages[messages.length - 1].id;
        if (messages.length < GAP_PAGE) break;
      }
    } catch {
      // The next reconnect's ?since= replay picks up where this stopped.
    } finally {
      this.gapFilling = false;
    }
  }

  onError(frame) {
    const text = describeError(frame);
    if (frame.nonce && this.log.hasPending(frame.nonce)) this.log.markFailed(frame.nonce, shortReason(frame));
    const retryMs = Number(frame.retry_after_ms) || 0;
    this.composer.showNotice(text, { timeoutMs: frame.code === 'rate_limited' ? Math.max(3000, retryMs + 500) : 8000 });
  }

  // ---- sending -------------------------------------------------------------------

  send(body) {
    const nonce = makeNonce();
    const room = this.room;
    this.log.addPending({ nonce, body, room, user: this.me.username });
    if (this.socket) this.socket.send({ type: 'send', room, body, nonce });
    // Otherwise it stays pending and goes out after the next `ready`.
  }

  retry(nonce) {
    const m = this.log.markRetrying(nonce);
    if (!m) return;
    this.composer.clearNotice(true);
    if (this.socket) this.socket.send({ type: 'send', room: m.room, body: m.body, nonce: m.nonce });
    this.composer.focus();
  }

  // ---- bits of UI -----------------------------------------------------------------

  noteId(id) {
    if (typeof id === 'number' && id > this.lastId) this.lastId = id;
  }

  setConnection(state) {
    this.connEl.dataset.state = state;
    setText(this.connText, CONNECTION_TEXT[state] || state);
    this.connEl.title = state === 'offline'
      ? 'Can’t reach the server. Messages you write are kept and sent when it is back.'
      : state === 'connecting' ? 'Connecting to the server…' : 'Connected: messages arrive live.';
    this.root.classList.toggle('is-offline', state !== 'connected');
  }

  setRoomHeader(name, topic) {
    setText($('#room-name'), name);
    const topicEl = $('#room-topic');
    setText(topicEl, topic);
    topicEl.hidden = !topic;
  }

  renderRooms() {
    const list = $('#room-list');
    list.replaceChildren(...this.rooms.map((room) => {
      const current = room.name === this.room;
      const unread = this.unreadByRoom.get(room.name) || 0;
      return h('li', null,
        h('a', {
          class: `room-link${current ? ' is-current' : ''}`,
          href: `#${encodeURIComponent(room.name)}`,
          'aria-current': current ? 'page' : null,
          onclick: (e) => e.preventDefault(),
        },
        h('span', { class: 'room-link-hash', 'aria-hidden': 'true' }, '#'),
        h('span', { class: 'room-link-name' }, room.name),
        unread && !current ? h('span', { class: 'room-unread' }, String(unread), h('span', { class: 'visually-hidden' }, ' unread')) : null));
    }));
  }

  setPanelOpen(open) {
    this.panelOpen = open;
    this.onlineToggle.setAttribute('aria-expanded', open ? 'true' : 'false');
    this.onlinePanel.classList.toggle('is-open', open);
  }

  setUnseen(n) {
    this.unseen = n;
    document.title = n > 0 ? `(${n}) Hearth` : 'Hearth';
  }
}

function describeError(frame) {
  switch (frame.code) {
    case 'rate_limited': {
      const s = Math.max(1, Math.ceil((Number(frame.retry_after_ms) || 1000) / 1000));
      return `Slow down — try again in ${s} s`;
    }
    case 'message_too_long': return 'That message is too long (4,000 characters at most).';
    case 'empty_message': return 'You can’t send an empty message.';
    case 'unknown_room': return 'That room doesn’t exist any more.';
    case 'not_a_member': return 'You are not a member of that room.';
    default: return frame.message || 'The server refused that message.';
  }
}

function shortReason(frame) {
  switch (frame.code) {
    case 'rate_limited': return 'too many messages at once';
    case 'message_too_long': return 'too long';
    case 'empty_message': return 'empty';
    default: return frame.message || frame.code || '';
  }
}

function defaultWsUrl() {
  const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${window.location.host}/ws`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
