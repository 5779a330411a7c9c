// The chat view: wires the HTTP API, the WebSocket, the rooms sidebar, the
// message log, the composer, presence, search, dialogs and notifications, and
// what people do with messages: reply, react, edit and delete.

import { api, ApiError } from './api.js';
import { $, h, setText } from './dom.js';
import { avatar, makeNonce, mentions, parseTs, setAvatar } from './format.js';
import { MessageLog, excerpt, plainText } from './log.js';
import { Composer } from './composer.js';
import { OnlineList, TypingIndicator } from './presence.js';
import { ChatSocket } from './socket.js';
import { RoomStore, Sidebar, lockIcon, personIcon } from './rooms.js';
import { MentionAutocomplete } from './mentions.js';
import { Notifier } from './notify.js';
import { SearchPanel } from './search.js';
import { Switcher } from './switcher.js';
import { Dialogs, confirmAction, setDialogFocusFallback } from './dialogs.js';
import { rememberEmoji } from './emoji.js';
import { Drafts } from './drafts.js';
import { Settings } from './settings.js';
import { syncPushClock } from './pushsub.js';
import { Onboarding } from './onboarding.js';
import { parseHash, permalinkFor, copyText } from './permalink.js';
import { CommandAutocomplete, interpret, runCommand } from './commands.js';
import { Lightbox, UploadTray } from './uploads.js';
import { ProfileDialog, Profiles, paintAvatar } from './profiles.js';

const PAGE = 50;
const GAP_PAGE = 200;
// Frames that wait while the rest of a replay is paged in (they must follow it).
const GAP_HELD = new Set(['message', 'edited', 'deleted', 'reaction', 'preview']);
const DEFAULT_ROOM = 'general';
const READ_DEBOUNCE_MS = 400;

const OFFLINE_TEXT = 'You are offline. Try again once Hearth is connected.';

const CONNECTION_TEXT = {
  connected: 'Connected',
  connecting: 'Connecting…',
  offline: 'Offline, reconnecting…',
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
    this.isAdmin = false;
    this.store = new RoomStore();
    this.current = DEFAULT_ROOM;
    this.preview = null;       // a public room shown without being a member
    this.members = new Map();  // room -> [{username, online}]
    this.lastId = 0;           // highest message id seen, in any room
    this.socket = null;
    this.session = 0;          // bumps on every start/stop, to drop stale async results
    this.readies = 0;          // `ready` frames on this session
    this.gap = null;           // a replay's rest being paged in over HTTP (see onResumed)
    this.resumedFrom = null;   // the ?since= the current connection was opened with
    this.readTimer = null;
    this.openSeq = 0;
    this.renderQueued = false;
    this.readyMentionFloor = new Map(); // room -> last_id when its counts came from the server
    this.readyHead = 0;        // the position the last `ready` counted unread messages at
    this.ops = new Map();      // nonce -> {frame, own}: edits, deletions and reactions not yet answered
    this.rateWait = newRateWait(); // messages refused for going too fast, waiting to go again
    this.replies = new Map();  // room -> {id, user, excerpt}: the message the next send answers
    // room -> what is half written there (and the outbox), kept per user
    this.drafts = new Drafts({ onTaken: (nonces) => this.letGoUnsent(nonces) });
    this.profiles = new Profiles(); // display names and pictures, by username
    this.meKnown = false;      // /api/me answered for this session (administrator, invitations)
    this.meAsking = null;      // ...or is being asked
    this.unreadKnown = Promise.resolve(); // settles once the rooms' unread state arrived (or failed)
    this.unreadArrived = null;

    this.connEl = $('#conn');
    this.connText = $('#conn-text');
    this.onlineToggle = $('#online-toggle');
    this.onlinePanel = $('#online-panel');
    this.drawerToggle = $('#drawer-toggle');
    this.sidebarEl = $('#sidebar');
    this.backdrop = $('#drawer-backdrop');
    this.narrow = window.matchMedia('(max-width: 760px)');
    this.accountToggle = $('#account-toggle');
    this.accountMenu = $('#account-menu');

    this.log = new MessageLog({
      logEl: $('#log'),
      listEl: $('#messages'),
      startEl: $('#log-start'),
      loaderEl: $('#log-loader'),
      loadBtn: $('#load-older'),
      loadingEl: $('#log-loading'),
      newerEl: $('#log-newer'),
      newerBtn: $('#load-newer'),
      newerLoadingEl: $('#log-newer-loading'),
      jumpBtn: $('#jump'),
      unreadBtn: $('#jump-unread'),
      onLoadOlder: (room, before) => this.fetchOlder(room, before),
      onLoadNewer: (room, after) => this.fetchNewer(room, after),
      onJumpToLatest: () => this.jumpToLatest(),
      onRetry: (nonce) => this.retry(nonce),
      onDiscard: (nonce) => {
        this.log.discard(nonce);
        removeWaiting(this.rateWait, nonce);
        this.saveOutbox();
        this.composer.focus();
      },
      onSeen: () => this.scheduleRead(),
      permissions: (s, row) => this.permissions(s, row),
      onReply: (s, row) => this.startReply(s, row),
      onReact: (s, row, emoji, on) => this.react(row, emoji, on),
      onEdit: (s, row, body) => this.edit(row, body),
      onDelete: (s, row) => this.confirmDelete(s, row),
      onQuote: (s, row) => this.showOriginal(s, row),
      onCopyLink: (s, row) => this.copyLink(s, row),
      onEditLost: (text, hadFocus) => this.editLost(text, hadFocus),
      onOpenImage: (a) => this.lightbox.open(a),
      onRemovePreview: (row) => this.removePreview(row),
      profiles: this.profiles,
    });
    this.lightbox = new Lightbox($('#lightbox'));

    this.mentionBox = new MentionAutocomplete({
      input: $('#composer-input'),
      listEl: $('#mention-list'),
      statusEl: $('#mention-status'),
      candidates: () => this.mentionCandidates(),
      me: () => (this.me ? this.me.username : ''),
      combobox: $('#composer-field'),
      profiles: this.profiles,
    });

    this.commandBox = new CommandAutocomplete($('#composer-input'));

    this.composer = new Composer({
      form: $('#composer'),
      input: $('#composer-input'),
      button: $('#composer-send'),
      notice: $('#composer-notice'),
      status: $('#composer-status'),
      counter: $('#composer-count'),
      onSend: (body) => this.send(body),
      hasFiles: () => !this.tray.isEmpty,
      attach: $('#attach-btn'),
      onTyping: () => this.socket && !this.preview && this.socket.send({ type: 'typing', room: this.current }),
      interceptKey: (e) => this.mentionBox.onKeyDown(e) || this.commandBox.onKeyDown(e) || this.onComposerKey(e),
      onCommand: (body) => this.command(body),
    });
    $('#reply-cancel').addEventListener('click', () => this.cancelReply(true));
    this.tray = new UploadTray({
      list: $('#upload-tray'),
      onError: (text) => this.composer.showNotice(text),
      onChange: () => this.composer.updateCounter(),
    });
    this.setUpFileInput();
    // Each room keeps its own draft.
    $('#composer-input').addEventListener('input', () => this.keepDraft());

    this.online = new OnlineList({
      listEl: $('#online-list'),
      countEls: [$('#online-count'), $('#online-toggle-count')],
      onPick: (user) => this.startDm([user]),
      profiles: this.profiles,
    });
    this.typing = new TypingIndicator($('#typing'));

    this.sidebar = new Sidebar({
      store: this.store,
      roomList: $('#room-list'),
      dmList: $('#dm-list'),
      onOpen: (name) => this.openRoom(name),
    });

    this.notifier = new Notifier({ onOpen: (room, id) => this.openRoom(room, { at: id }) });
    this.search = new SearchPanel(this);
    this.switcher = new Switcher(this);
    this.dialogs = new Dialogs(this);
    this.settings = new Settings(this);
    this.profileDialog = new ProfileDialog({
      profiles: this.profiles,
      me: () => (this.me ? this.me.username : ''),
    });
    this.store.setProfiles(this.profiles);
    // Display names, statuses and pictures show wherever people do: messages and their
    // system lines, the online list, the sidebar's direct messages, the header, the members
    // dialog, the quick switcher and the @mention list.
    this.profiles.onChange((user) => {
      this.log.refreshAuthors(user);
      if (this.me) this.showMe(this.me.username);
      this.online.render();
      if (!this.root.hidden) {
        this.render();
        this.refreshHeaderAndLog();
      }
      this.dialogs.membersChanged(this.dialogs.roomDialogFor);
      this.mentionBox.refresh();
    });
    // A dialog closed with nowhere to give the focus back (its opener went, or sits in the
    // closed drawer): the conversation takes it.
    setDialogFocusFallback(() => this.focusConversation());
    this.onboarding = new Onboarding(this);

    $('#signout').addEventListener('click', () => this.confirmSignOut());
    // The account menu: who is signed in, Settings, Sign out (and the online list on narrower
    // screens). A disclosure: Escape or a click elsewhere closes it.
    this.accountToggle.addEventListener('click', () => this.setAccountOpen(!this.accountOpen));
    // Choosing an item closes the menu first (capture phase), with focus on the account
    // button, so that the dialog an item opens gives focus back there.
    this.accountMenu.addEventListener('click', (e) => {
      if (e.target instanceof Element && e.target.closest('button')) this.setAccountOpen(false);
    }, true);
    // Tabbing (or otherwise moving the focus) out of the menu and its button closes it too.
    // Focus going nowhere (a click on the menu's own text, the window losing focus) does not:
    // clicks elsewhere close it on pointerdown (below).
    this.accountToggle.parentElement.addEventListener('focusout', (e) => {
      const next = e.relatedTarget;
      if (this.accountOpen && next instanceof Node && !this.accountToggle.parentElement.contains(next)) {
        this.setAccountOpen(false, false);
      }
    });
    this.accountOpen = false;
    $('#preview-join').addEventListener('click', () => this.joinPreview());

    // Narrow screens: the online panel opens as a sheet below the header.
    // The focus moves into it (its first person, or the list itself when nobody there is a
    // button); Escape closes it and gives the focus back.
    this.onlineToggle.addEventListener('click', () => {
      this.setPanelOpen(!this.panelOpen);
      if (this.panelOpen) {
        const first = this.onlinePanel.querySelector('button');
        (first || this.onlinePanel).focus({ preventScroll: true });
      }
    });
    this.panelOpen = false;
    // Phones: the sidebar is a drawer.
    this.drawerToggle.addEventListener('click', () => this.setDrawerOpen(!this.drawerOpen));
    this.backdrop.addEventListener('click', () => this.setDrawerOpen(false));
    $('#drawer-close').addEventListener('click', () => this.setDrawerOpen(false));
    this.drawerOpen = false;
    this.narrow.addEventListener('change', () => {
      if (!this.narrow.matches) this.setDrawerOpen(false);
      this.syncDrawerA11y();
    });

    document.addEventListener('keydown', (e) => this.onKey(e));
    document.addEventListener('pointerdown', (e) => {
      if (this.accountOpen && !this.accountMenu.contains(e.target) && !this.accountToggle.contains(e.target)) {
        this.setAccountOpen(false, false);
      }
      if (this.panelOpen && !this.onlinePanel.contains(e.target) && !this.onlineToggle.contains(e.target)) {
        this.setPanelOpen(false);
      }
    });

    document.addEventListener('visibilitychange', () => {
      if (!this.root.hidden) this.updateTitle();
      if (document.visibilityState === 'visible') this.scheduleRead();
    });
    window.addEventListener('focus', () => this.scheduleRead());
    window.addEventListener('hashchange', () => {
      const { room: name, id } = parseHash(window.location.hash);
      if (!name || !this.me) return;
      if (id != null) this.openPermalink(name, id);
      else if (name !== this.current) this.openRoom(name);
    });
  }

  // ---- lifecycle ---------------------------------------------------------------

  async start(user) {
    const session = ++this.session;
    this.me = user;
    this.isAdmin = false;
    this.lastId = 0;
    this.readies = 0;
    this.preview = null;
    this.members.clear();
    this.store.clear();
    this.store.setMe(user.username);
    this.store.upsert({ name: DEFAULT_ROOM, topic: '', kind: 'room', public: true });
    this.readyMentionFloor.clear();
    this.readyHead = 0;
    this.ops.clear();
    clearTimeout(this.rateWait.timer);
    this.rateWait = newRateWait();
    this.replies.clear();
    this.gap = null;
    this.resumedFrom = null;
    this.current = roomFromHash() || DEFAULT_ROOM;
    this.drafts.open(user.username);
    // The first room opens at the first unread message: that needs the unread state (from the
    // room list or the first `ready`, whichever comes first).
    this.unreadKnown = new Promise((resolve) => { this.unreadArrived = resolve; });

    this.root.hidden = false;
    document.body.classList.add('in-chat');
    this.showMe(user.username);
    $('#admin-link').hidden = true;
    this.connSettled = false;
    this.setConnection('connecting');
    this.online.setMe(user.username);
    this.online.reset([user.username]);
    this.typing.clear();
    this.composer.reset();
    this.log.resetAll(user.username);
    // Messages written before a reload (while the server was out of reach) go out again,
    // with the same nonces: the server stores each one once.
    const outbox = this.drafts.outbox();
    this.drafts.adopt(outbox);
    for (const m of outbox) {
      this.log.addPending(this.log.state(m.room, true), { ...m, user: user.username });
      // "Not sent" before the reload: still there, still waiting for Retry or Discard.
      if (m.failed) this.log.markFailed(m.nonce, typeof m.reason === 'string' ? m.reason : '');
    }
    this.composer.setValue(this.drafts.get(this.current));
    this.search.reset();
    this.syncDrawerA11y();
    this.render();

    this.meKnown = false;
    this.meAsking = null;
    this.loadMe(session);

    this.socket = new ChatSocket({
      url: (window.HEARTH && window.HEARTH.ws) || defaultWsUrl(),
      since: () => {
        // While the rest of a replay is being paged in, a new connection starts where that
        // rest starts.
        const since = this.gap ? this.gap.after : (this.lastId || null);
        this.resumedFrom = since;
        return since;
      },
      onFrame: (frame) => this.onFrame(frame),
      onState: (state) => this.setConnection(state),
      onSessionEnded: () => this.sessionEnded(),
      onConnectFailed: () => this.checkSession(session),
    });
    this.socket.start();

    // The rooms (with unread state) and the first room's history, while the socket connects.
    api.rooms().then((data) => {
      if (session !== this.session || this.readies > 0 || !data || !Array.isArray(data.rooms)) return;
      this.store.setAll(data.rooms);
      this.endPreviewIfMember();
      this.render();
      this.refreshHeader();
    }).catch(() => {}).finally(() => {
      if (session === this.session && this.unreadArrived) this.unreadArrived();
    });
    const linked = parseHash(window.location.hash).id;
    if (linked != null) await this.openPermalink(this.current, linked, { initial: true });
    else await this.openRoom(this.current, { initial: true });
    this.composer.focus();
    if (session === this.session) {
      this.settings.openFromUrl();
      syncPushClock();
    }
  }

  /** Tear everything down (no network calls). */
  stop() {
    this.session++;
    if (this.socket) this.socket.stop();
    this.socket = null;
    this.typing.clear();
    this.setPanelOpen(false);
    this.setAccountOpen(false, false);
    this.setDrawerOpen(false);
    this.search.close(false);
    this.dialogs.closeAll();
    this.settings.close();
    this.onboarding.stop();
    this.switcher.close();
    this.root.hidden = true;
    document.body.classList.remove('in-chat');
    clearTimeout(this.readTimer);
    // Nothing of this session is said or kept for the next one.
    clearTimeout(this.connLostTimer);
    this.connLostTimer = null;
    this.connLostSaid = false;
    this.connUpOnce = false;
    this.tray.reset();
    document.title = 'Hearth';
  }

  /**
   * What the signed-in person may do (`/api/me`: administrator, invitations, the welcome). A page
   * opened while the server was out of reach asks again with each `ready` until it is known.
   */
  loadMe(session) {
    if (this.meKnown || this.meAsking) return;
    const asking = api.me().then((data) => {
      if (session !== this.session || !data) return;
      this.meKnown = true;
      this.isAdmin = Boolean(data.is_admin);
      $('#admin-link').hidden = !this.isAdmin;
      this.log.actions.refresh();
      this.onboarding.start(data);
      this.dialogs.roomChanged(this.dialogs.roomDialogFor);
    }).catch(() => {
      // Asked again on the next `ready`.
    }).finally(() => {
      if (this.meAsking === asking) this.meAsking = null;
    });
    this.meAsking = asking;
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

  /** "Sign out" in the account menu: ask first (unsent messages would be lost). */
  async confirmSignOut() {
    const unsent = this.log.unsent(true).length;
    const ok = await confirmAction({
      title: 'Sign out?',
      text: `You are signed in as ${this.me.username}.${unsent
        ? ` ${unsent === 1 ? 'A message has' : `${unsent} messages have`} not been sent yet and will be lost.`
        : ''}${this.drafts.drafts.size ? ' Your unfinished drafts are removed from this browser.' : ''}`,
      ok: 'Sign out',
    });
    if (!ok) {
      this.accountToggle.focus({ preventScroll: true });
      return;
    }
    await this.signOut();
  }

  async signOut() {
    const btn = $('#signout');
    btn.disabled = true;
    this.drafts.forget();
    if (this.socket) this.socket.stop();
    try {
      await api.logout();
    } catch {
      // Already signed out or unreachable: the session is gone for this page either way.
    }
    btn.disabled = false;
    this.stop();
    // The next person to sign in on this browser does not start in this one's conversation.
    try {
      window.history.replaceState(null, '', window.location.pathname + window.location.search);
    } catch { /* ignore */ }
    this.o.onSignedOut('');
  }

  // ---- opening rooms --------------------------------------------------------------

  /**
   * Show a room (or DM). With `at`, load the history around that message and
   * highlight it.
   */
  async openRoom(name, { at = null, initial = false } = {}) {
    const session = this.session;
    const seq = ++this.openSeq;
    name = String(name || DEFAULT_ROOM);
    if (initial) {
      this.openingFirst = true;
      try {
        await this.unreadKnown;
      } finally {
        this.openingFirst = false;
      }
      if (session !== this.session || seq !== this.openSeq) return undefined;
    }
    this.showRoomError('');
    if (this.narrow.matches) this.setDrawerOpen(false);

    let room = this.store.get(name);
    let preview = null;
    if (!room) {
      // Not a member: a public room can be read without joining.
      try {
        const data = await api.room(name);
        if (session !== this.session || seq !== this.openSeq) return;
        room = this.store.get(name);
        if (!room) preview = data && data.room ? { ...data.room, name: data.room.name || name } : null;
        if (data && Array.isArray(data.members)) this.members.set(name, data.members);
      } catch (err) {
        if (session !== this.session || seq !== this.openSeq) return;
        if (err instanceof ApiError && err.isUnauthorized) return this.sessionEnded();
        if (initial && err instanceof ApiError && err.isNetwork && name !== DEFAULT_ROOM) {
          // Reloaded while the server is out of reach: open it all the same, as far as its
          // name tells, so its draft and unsent messages show and can be added to. Its
          // history comes once the server answers; the first `ready` says what it is (and
          // opens #general instead if it is not the reader's).
          room = this.store.upsert({ name });
        } else {
          this.showRoomError(roomErrorText(err, name));
          if (name !== DEFAULT_ROOM && !initial) return undefined;
          if (name !== DEFAULT_ROOM) return this.openRoom(DEFAULT_ROOM);
          room = this.store.get(DEFAULT_ROOM);
        }
      }
      if (!room && !preview) return undefined;
    }

    const switching = this.current !== name;
    if (switching) this.keepDraft();
    this.current = name;
    this.tray.show(name);
    this.preview = room ? null : preview;
    if (switching) this.typing.clear();
    writeHash(name);

    const info = room || this.preview;
    const lastReadAtOpen = room && room.unread > 0 ? room.last_read : null;
    const s = this.log.show(name, this.store.label(info));
    s.preview = Boolean(this.preview);
    this.refreshHeader();
    this.render();
    this.composer.setRoom(this.store.label(info));
    if (switching) this.composer.setValue(this.preview ? '' : this.drafts.get(name));
    this.composer.setEnabled(!this.preview);
    this.mentionBox.close();
    this.loadMembers(name);
    this.notifier.closeFor(name);

    if (at != null && s.byId.has(at)) {
      this.log.highlight(at);
      this.scheduleRead();
      return undefined;
    }
    let applied = true;
    try {
      if (at != null) {
        applied = await this.loadAround(s, at);
      } else if (!s.loaded && lastReadAtOpen != null && room.unread >= PAGE) {
        // More unread than a page: open where they start, not at the newest.
        applied = await this.loadFromUnread(s, lastReadAtOpen).catch(() => this.loadLatest(s, { retry: initial }));
      } else if (!s.loaded) {
        applied = await this.loadLatest(s, { retry: initial });
      }
    } catch (err) {
      if (session !== this.session) return undefined;
      if (err instanceof ApiError && err.isUnauthorized) return this.sessionEnded();
      if (this.log.current === s && seq === this.openSeq) this.showRoomError(roomErrorText(err, this.store.label(info)));
      return undefined;
    }
    if (session !== this.session || this.log.current !== s) return undefined;
    // Another room, or the same one at another message (or its newest), was asked for
    // meanwhile: that one is shown (false).
    if (seq !== this.openSeq || applied === false) return false;

    this.log.markUnread(s, lastReadAtOpen);
    if (at != null) {
      if (!this.log.highlight(at)) this.showRoomError('That message is not in this conversation any more.');
    } else if (!s.settled) {
      s.settled = true;
      this.log.settle();
      this.log.revealDivider();
    } else {
      this.log.revealDivider();
    }
    this.scheduleRead();
    return undefined;
  }

  /**
   * Whether a page of history asked for in `session` while `s` was at `epoch` belongs to
   * nothing shown any more: the session ended, or the room's history was replaced (a jump).
   */
  stale(session, s, epoch) {
    return session !== this.session || s.epoch !== epoch;
  }

  /** The newest page of a room, merged with what is shown; false when a jump replaced it. */
  async loadLatest(s, { retry = false } = {}) {
    const session = this.session;
    let delay = 1000;
    const epoch = s.epoch;
    for (;;) {
      const readiesBefore = this.readies;
      try {
        const data = await api.messages(s.room, { limit: PAGE });
        // The history was replaced meanwhile (a jump): this page belongs to none of it.
        if (this.stale(session, s, epoch)) return false;
        const messages = (data && data.messages) || [];
        this.log.setHistory(s, messages, { reachedStart: messages.length < PAGE, reachedEnd: true });
        // A connection became ready while this was loading: close any gap in between.
        if (this.readies !== readiesBefore) this.catchUp(s);
        return true;
      } catch (err) {
        if (!retry || session !== this.session || (err instanceof ApiError && !err.isNetwork && err.status < 500)) throw err;
        this.setConnection('offline');
        await sleep(delay);
        if (this.stale(session, s, epoch)) return false;
        this.setConnection(this.socket && this.socket.isReady ? 'connected' : 'connecting');
        delay = Math.min(delay * 2, 15000);
      }
    }
  }

  /** A window of history starting at the first unread message (the one after `lastRead`). */
  async loadFromUnread(s, lastRead) {
    if (lastRead > 0) return this.loadAround(s, lastRead);
    const session = this.session;
    s.clearHistory();
    const epoch = s.epoch;
    s.settled = true;
    s.reachedEnd = false;
    this.log.updateLoaders();
    const data = await api.messages(s.room, { after: 0, limit: PAGE });
    if (this.stale(session, s, epoch)) return false;
    const messages = (data && data.messages) || [];
    s.pinned = false;
    this.log.setHistory(s, messages, { reachedStart: true, reachedEnd: messages.length < PAGE });
    return true;
  }

  /** A window of history around message `id`; false when another replaced it meanwhile. */
  async loadAround(s, id) {
    const session = this.session;
    s.clearHistory();
    const epoch = s.epoch;
    s.settled = true;
    s.reachedEnd = false; // hold live messages until we know where the window ends
    this.log.updateLoaders();
    const data = await api.messages(s.room, { around: id, limit: PAGE });
    if (this.stale(session, s, epoch)) return false;
    const messages = (data && data.messages) || [];
    const half = Math.floor((PAGE - 1) / 2);
    const before = messages.filter((m) => m.id < id).length;
    const after = messages.filter((m) => m.id > id).length;
    const room = this.store.get(s.room);
    const newest = messages.length ? messages[messages.length - 1].id : 0;
    const reachedEnd = after < PAGE - 1 - half || Boolean(room && room.last_id && newest >= room.last_id);
    s.pinned = false;
    this.log.setHistory(s, messages, { reachedStart: before < half, reachedEnd });
    return true;
  }

  async fetchOlder(room, before) {
    const data = await api.messages(room, { before, limit: PAGE });
    const messages = (data && data.messages) || [];
    return { messages, reachedStart: messages.length < PAGE };
  }

  async fetchNewer(room, after) {
    const data = await api.messages(room, { after, limit: PAGE });
    const messages = (data && data.messages) || [];
    return { messages, reachedEnd: messages.length < PAGE };
  }

  /** Leave a window into the past: show the newest messages again. */
  async jumpToLatest() {
    const s = this.log.current;
    if (!s) return;
    s.clearHistory();
    const epoch = s.epoch;
    s.settled = false;
    this.log.updateLoaders();
    try {
      await this.loadLatest(s);
    } catch (err) {
      if (s.epoch === epoch && this.log.current === s) this.showRoomError(roomErrorText(err, s.title));
      return;
    }
    if (this.log.current !== s || s.epoch !== epoch) return;
    s.settled = true;
    this.log.settle();
  }

  /** Page `after=` the newest shown message until the end (fills a gap). */
  async catchUp(s) {
    const session = this.session;
    let after = s.newestId;
    if (!after || !s.reachedEnd) return;
    const epoch = s.epoch;
    try {
      for (let i = 0; i < 50; i++) {
        const data = await api.messages(s.room, { after, limit: GAP_PAGE });
        if (this.stale(session, s, epoch)) return;
        const messages = (data && data.messages) || [];
        if (!messages.length) break;
        this.log.addMessages(s, messages);
        this.log.reapplyChanges(s, messages);
        after = messages[messages.length - 1].id;
        if (messages.length < GAP_PAGE) break;
      }
    } catch {
      // The next reconnect's ?since= replay picks up where this stopped.
    }
  }

  async loadMembers(name) {
    const session = this.session;
    if (!this.store.has(name)) return;
    try {
      const data = await api.room(name);
      if (session !== this.session || !data) return;
      if (Array.isArray(data.members)) this.members.set(name, data.members);
      if (data.room && this.store.has(name)) {
        const r = data.room;
        // Only the fields that describe the room; unread state comes from frames.
        this.store.upsert(pickDefined({ name, topic: r.topic, public: r.public, kind: r.kind, users: r.users, members: Array.isArray(data.members) ? data.members.length : r.members, created_by: r.created_by }));
      }
      if (name === this.current) {
        this.refreshHeader();
        this.log.actions.refresh();
      }
      this.dialogs.membersChanged(name);
    } catch {
      // The member list is a nicety; the header keeps its count.
    }
  }

  async joinPreview() {
    const room = this.preview;
    if (!room) return;
    const btn = $('#preview-join');
    btn.disabled = true;
    try {
      const data = await api.join(room.name);
      this.store.upsert({ ...(data && data.room ? data.room : room) });
      this.preview = null;
      this.render();
      await this.openRoom(room.name);
      this.announce(`You joined ${this.store.label(this.store.get(room.name))}.`);
      this.focusConversation();
    } catch (err) {
      this.showRoomError(err.message || 'Could not join that room.');
    } finally {
      btn.disabled = false;
    }
  }

  /** Open (creating when needed) the DM with these users. */
  async startDm(users) {
    try {
      const data = await api.createDm(users);
      const room = data && data.room;
      if (!room) throw new ApiError(0, 'bad_answer', 'The server gave an unexpected answer.');
      this.store.upsert(room);
      this.setPanelOpen(false);
      await this.openRoom(room.name);
      this.focusConversation();
      return null;
    } catch (err) {
      const text = err instanceof ApiError ? err.message : 'Could not start that conversation.';
      this.showRoomError(text);
      return text;
    }
  }

  // ---- frames ---------------------------------------------------------------------

  onFrame(frame) {
    if (this.gap && !this.gap.stalled && GAP_HELD.has(frame.type)) {
      this.gap.held.push(frame);
      return undefined;
    }
    return this.applyFrame(frame);
  }

  applyFrame(frame) {
    switch (frame.type) {
      case 'ready': return this.onReady(frame);
      case 'message': return this.onMessage(frame);
      case 'presence': return this.onPresence(frame);
      case 'profile': return this.profiles.update(frame.user);
      case 'typing':
        if (frame.room === this.current && this.me && String(frame.user).toLowerCase() !== this.me.username.toLowerCase()) {
          this.typing.add(frame.user);
        }
        return undefined;
      case 'resumed': return this.onResumed(frame);
      case 'error': return this.onError(frame);
      case 'room_joined': return this.onRoomJoined(frame);
      case 'room_left': return this.onRoomLeft(frame);
      case 'room_created': return this.dialogs.directoryChanged(frame.room);
      case 'room_updated': return this.onRoomUpdated(frame);
      case 'member_joined': return this.onMember(frame, true);
      case 'member_left': return this.onMember(frame, false);
      case 'read': return this.onRead(frame);
      case 'mention': return this.onMention(frame);
      case 'edited': return this.onEdited(frame);
      case 'deleted': return this.onDeleted(frame);
      case 'reaction': return this.onReaction(frame);
      case 'preview': return this.onPreview(frame);
      default: return undefined; // unknown frame types are ignored (forward compatible)
    }
  }

  onReady(frame) {
    const first = this.readies === 0;
    this.readies++;
    if (this.unreadArrived) this.unreadArrived();
    if (frame.user && frame.user.username) {
      this.me = frame.user;
      this.showMe(frame.user.username);
      this.log.setMe(frame.user.username);
      this.online.setMe(frame.user.username);
      this.store.setMe(frame.user.username);
    }
    if (Array.isArray(frame.profiles)) this.profiles.setAll(frame.profiles);
    if (typeof frame.last_id === 'number') {
      this.readyHead = frame.last_id;
      // A fresh connection starts at head (history comes over HTTP). A resuming one moves on
      // only with the frames it replays, and reaches head at `resumed`: a connection lost in
      // the middle of its replay resumes from the last frame applied.
      if (this.resumedFrom == null) this.noteId(frame.last_id);
    }
    // Everything after the position this connection resumed from comes again (a gap that
    // stalled may have let live frames beyond it move the position on).
    if (this.resumedFrom != null) this.lastId = this.resumedFrom;
    // This connection's replay covers whatever a gap being paged in still missed.
    this.gap = null;
    if (Array.isArray(frame.rooms) && frame.rooms.length) {
      this.store.setAll(frame.rooms);
      this.readyMentionFloor.clear();
      for (const r of this.store.all()) this.readyMentionFloor.set(r.name, r.last_id);
      // Rooms this page shows but the user no longer belongs to.
      for (const name of Array.from(this.log.rooms.keys())) {
        if (!this.store.has(name) && !(this.preview && this.preview.name === name)) this.log.drop(name);
      }
      // (The room the page is opening first finds out for itself: it may be a public room to
      // preview.)
      if (!this.store.has(this.current) && !this.preview && !this.openingFirst) this.openRoom(DEFAULT_ROOM);
      this.endPreviewIfMember();
    }
    // Who belongs to each room may have changed while the page was not connected (a sign-up,
    // someone leaving): the member lists read before are stale, and the room objects of `ready`
    // carry the counts. The open room's list is read again (the header, the members dialog and
    // @mentions use it).
    this.members.clear();
    if (this.store.has(this.current)) this.loadMembers(this.current);
    if (!this.meKnown) this.loadMe(this.session);
    this.online.reset(Array.isArray(frame.online) ? frame.online : []);
    if (this.me && !this.online.has(this.me.username)) this.online.set(this.me.username, true);
    this.typing.clear();
    this.render();
    this.refreshHeader();

    const s = this.log.current;
    if (first && s && s.loaded) this.catchUp(s);

    // Resend what never got acknowledged, with the same nonces: the server
    // stores nothing twice and echoes the stored message back.
    // (Those waiting for the rate go too, in order: any refused again wait anew, with a
    // fresh count.)
    clearTimeout(this.rateWait.timer);
    this.rateWait = newRateWait();
    for (const m of this.log.unsent()) {
      // Sent (again) now: "sending…", no longer "waiting" with Discard; it has gone.
      this.log.markRetrying(m.nonce);
      this.socket.send(sendFrame(m));
    }
    // Changes sent just before the connection dropped: repeats are harmless (the server
    // answers a repeat with the current state and stores nothing).
    for (const op of this.ops.values()) this.socket.send(op.frame);
    this.scheduleRead();
  }

  onMessage(m) {
    if (typeof m.id !== 'number') return;
    this.noteId(m.id);
    if (m.nonce) {
      this.rateWait.tries.delete(m.nonce);
      if (m.nonce === this.rateWait.inFlight) this.sendNextWaiting(0);
    }
    const own = this.isMe(m.user);
    const room = this.store.get(m.room);
    let fresh = false;
    if (room) {
      fresh = m.id > room.last_id;
      if (fresh) room.last_id = m.id;
      if (fresh && !own && m.id > room.last_read) room.unread += 1;
    }
    const s = this.log.state(m.room);
    if (s) {
      if (m.room === this.current) this.typing.remove(m.user);
      this.log.addMessages(s, [m]);
    }
    if (room && fresh && !own) this.maybeNotify(room, m);
    this.queueRender();
  }

  maybeNotify(room, m) {
    const watching = document.visibilityState === 'visible' && m.room === this.current && this.log.newestVisible();
    if (watching || room.notify === 'nothing') return;
    const mentioned = mentions(m.body, this.me.username);
    const isDm = room.kind === 'dm';
    if (!(mentioned || (isDm && room.notify === 'all'))) return;
    const where = isDm ? (room.users.length > 2 ? ` in ${this.store.title(room)}` : '') : ` in #${room.name}`;
    this.notifier.notify({
      room: room.name,
      id: m.id,
      title: mentioned && !isDm ? `${m.user} mentioned you${where}` : `${m.user}${where}`,
      body: m.body,
    });
    if (document.visibilityState === 'visible' && m.room !== this.current) {
      this.announce(mentioned ? `${m.user} mentioned you${where}.` : `New message from ${m.user}${where}.`);
    }
  }

  onMention(frame) {
    const room = this.store.get(frame.room);
    if (!room || typeof frame.id !== 'number') return;
    if (frame.id <= room.last_read) return;
    // A new message's mention up to the room's last_id at ready was counted by the server. An
    // edit's (with its `seq`) may name an older message: the server skips it when ready
    // counted the edit, so it is news whatever the message's id.
    if (typeof frame.seq !== 'number' && frame.id <= (this.readyMentionFloor.get(room.name) || 0)) return;
    room.mentions += 1;
    this.queueRender();
  }

  onRead(frame) {
    const room = this.store.get(frame.room);
    if (!room) return;
    if (typeof frame.id === 'number' && frame.id > room.last_read) room.last_read = frame.id;
    if (typeof frame.unread === 'number') room.unread = frame.unread;
    if (typeof frame.mentions === 'number') room.mentions = frame.mentions;
    if (room.unread === 0) this.notifier.closeFor(room.name);
    this.queueRender();
  }

  onRoomJoined(frame) {
    if (!frame.room || !frame.room.name) return;
    const room = this.store.upsert(frame.room);
    this.readyMentionFloor.set(room.name, room.last_id);
    this.endPreviewIfMember();
    // Messages between the membership change and this frame came over no socket.
    const s = this.log.state(room.name);
    if (s && s.loaded) this.catchUp(s);
    this.render();
  }

  /**
   * The room shown as a preview is one of the user's own after all: the room list
   * arrived after the page opened it (a link to #room), or the user joined it.
   */
  endPreviewIfMember() {
    if (!this.preview || !this.store.has(this.preview.name)) return;
    this.preview = null;
    const s = this.log.current;
    if (s) s.preview = false;
    this.composer.setEnabled(true);
    const room = this.store.get(this.current);
    if (room) this.composer.setRoom(this.store.label(room));
    this.refreshHeader();
    this.scheduleRead();
  }

  onRoomLeft(frame) {
    const name = typeof frame.room === 'string' ? frame.room : frame.room && frame.room.name;
    if (!name) return;
    this.store.remove(name);
    this.members.delete(name);
    this.replies.delete(name);
    this.drafts.delete(name);
    this.log.drop(name);
    this.dialogs.roomGone(name);
    if (this.current === name) {
      this.current = '';
      this.openRoom(DEFAULT_ROOM);
    }
    this.render();
  }

  onRoomUpdated(frame) {
    const r = frame.room;
    if (!r || !r.name) return;
    const oldName = frame.old_name && frame.old_name !== r.name ? frame.old_name : null;
    // Frames waiting for a gap to fill name the room as it was.
    if (oldName && this.gap) {
      for (const [from, to] of this.gap.renamed) if (to === oldName) this.gap.renamed.set(from, r.name);
      this.gap.renamed.set(oldName, r.name);
    }
    const before = this.store.get(oldName || r.name);
    const topicChanged = Boolean(before) && before.kind !== 'dm' && typeof r.topic === 'string'
      && r.topic !== (before.topic || '');
    const fields = pickDefined({ name: r.name, topic: r.topic, public: r.public, kind: r.kind, members: r.members, users: r.users, created_by: r.created_by });
    if (oldName) {
      if (!this.store.has(oldName)) return;
      this.store.rename(oldName, fields);
      this.log.rename(oldName, r.name);
      this.drafts.rename(oldName, r.name);
      this.tray.rename(oldName, r.name);
      if (this.replies.has(oldName)) {
        this.replies.set(r.name, this.replies.get(oldName));
        this.replies.delete(oldName);
      }
      if (this.members.has(oldName)) {
        this.members.set(r.name, this.members.get(oldName));
        this.members.delete(oldName);
      }
      this.dialogs.roomRenamed(oldName, r.name);
      if (this.current === oldName) {
        this.current = r.name;
        writeHash(r.name);
      }
    } else if (this.store.has(r.name)) {
      this.store.upsert(fields);
    }
    // Say so in the conversation (the same change can arrive twice: from the frame and from
    // the answer to the reader's own request; only the first one differs from what is known).
    const s = this.log.state(r.name);
    if (s && before) {
      if (oldName) this.log.addNote(s, `Room renamed from #${oldName} to #${r.name}`);
      if (topicChanged) this.log.addNote(s, r.topic ? `Topic changed to “${r.topic}”` : 'Topic cleared');
    }
    if (this.current === r.name) {
      this.refreshHeaderAndLog();
      this.log.actions.refresh();
    }
    this.dialogs.roomChanged(r.name);
    this.render();
  }

  onMember(frame, joined) {
    const room = this.store.get(frame.room);
    if (!room) return;
    const list = this.members.get(frame.room);
    if (list) {
      const key = String(frame.user).toLowerCase();
      const rest = list.filter((m) => String(m.username).toLowerCase() !== key);
      if (joined) rest.push({ username: frame.user, online: this.online.has(frame.user) });
      this.members.set(frame.room, rest);
      room.members = rest.length;
    } else if (typeof room.members === 'number') {
      room.members = Math.max(0, room.members + (joined ? 1 : -1));
    }
    if (frame.room === this.current) this.refreshHeader();
    this.dialogs.membersChanged(frame.room);
    const s = this.log.state(frame.room);
    if (s && frame.user) this.log.addNote(s, '', { user: String(frame.user), verb: joined ? 'joined' : 'left' });
  }

  onPresence(frame) {
    const online = Boolean(frame.online);
    this.online.set(frame.user, online);
    const key = String(frame.user).toLowerCase();
    for (const [name, list] of this.members) {
      for (const m of list) if (String(m.username).toLowerCase() === key) m.online = online;
      this.dialogs.membersChanged(name);
    }
  }

  onResumed(frame) {
    const head = typeof frame.head === 'number' ? frame.head : this.readyHead;
    if (frame.complete !== false) {
      this.noteId(head);
      return;
    }
    // More was missed than the server replays: page the rest over HTTP (every room's
    // messages, edits, deletions and reactions) up to `head`, holding live frames until then
    // so that nothing is applied out of order.
    const gap = { after: this.lastId, head, held: [], stalled: false, renamed: new Map() };
    this.gap = gap;
    this.fillGap(gap);
  }

  /** Page `/api/events` from `gap.after` to `gap.head`, then apply the frames held meanwhile. */
  async fillGap(gap) {
    const session = this.session;
    const current = () => session === this.session && this.gap === gap;
    let failures = 0;
    for (;;) {
      let data;
      try {
        data = await api.events(gap.after, GAP_PAGE);
        // An answer without its list is no page (an empty one would end the fill).
        if (!data || !Array.isArray(data.events)) throw new Error('no events');
      } catch {
        if (!current()) return;
        if (++failures >= 4) {
          // Leave the rest to the next connection's replay (it starts at `gap.after`); show
          // what is live meanwhile.
          gap.stalled = true;
          for (const f of gap.held.splice(0)) this.applyFrame(renamedIn(gap, f));
          return;
        }
        await sleep(1000 * failures);
        if (!current()) return;
        continue;
      }
      if (!current()) return;
      const events = data.events;
      let beyond = false;
      for (const f of events) {
        const at = f.type === 'message' ? f.id : f.seq;
        if (typeof at !== 'number' || at <= gap.after) continue;
        if (at > gap.head) { beyond = true; break; } // live from here on: held or to come
        this.applyFrame(renamedIn(gap, f));
        gap.after = at;
      }
      failures = 0;
      if (beyond || events.length < GAP_PAGE) break;
    }
    this.gap = null;
    this.noteId(gap.head);
    for (const f of gap.held) this.applyFrame(renamedIn(gap, f));
  }

  onError(frame) {
    const op = frame.nonce ? this.ops.get(frame.nonce) : null;
    if (op) {
      this.ops.delete(frame.nonce);
      this.opFailed(op, frame);
      return;
    }
    // Refused read markers and typing pings carry no nonce and need no words on screen.
    if (!frame.nonce && frame.code !== 'rate_limited') return;
    const retryMs = Number(frame.retry_after_ms) || 0;
    if (frame.nonce && frame.code === 'rate_limited' && this.sendLater(frame.nonce, retryMs)) {
      this.composer.showNotice('Slow down: your messages go out one by one as the rate allows.',
        { timeoutMs: Math.max(3000, retryMs + 500) });
      return;
    }
    // The one sent from the waiting line was refused otherwise: the next one goes.
    if (frame.nonce && frame.nonce === this.rateWait.inFlight) this.sendNextWaiting(0);
    let text = describeError(frame);
    let reason = shortReason(frame);
    // A reply to a message deleted meanwhile: Retry sends it on its own.
    if (frame.nonce && frame.code === 'unknown_message' && this.log.dropQuote(frame.nonce)) {
      text = 'The message you replied to was deleted. Retry sends yours without the quote.';
      reason = 'the message it answers was deleted; Retry sends it without the quote';
    }
    if (frame.nonce && this.log.markFailed(frame.nonce, reason)) this.saveOutbox();
    this.composer.showNotice(text, { timeoutMs: frame.code === 'rate_limited' ? Math.max(3000, retryMs + 500) : 8000 });
  }

  // ---- sending -------------------------------------------------------------------

  send(body) {
    if (this.preview) return false;
    const s = this.log.current;
    if (!s) return false;
    if (this.tray.busy) {
      this.composer.showNotice('Your files are still uploading. Send once they are ready, or cancel them.');
      return false;
    }
    const attachments = this.tray.ready();
    const failed = this.tray.failedNames();
    if (!body && !attachments.length) {
      if (failed.length) this.composer.showNotice(`${failed.join(', ')} did not upload: remove ${failed.length > 1 ? 'them' : 'it'} or attach ${failed.length > 1 ? 'them' : 'it'} again.`);
      return false;
    }
    this.tray.clear();
    if (failed.length) this.composer.showNotice(`Sent without ${failed.join(', ')}, which did not upload.`);
    const nonce = makeNonce();
    const room = this.current;
    if (!s.reachedEnd) this.jumpToLatest();
    this.mentionBox.close();
    const reply = this.replies.get(room) || null;
    if (reply) {
      this.replies.delete(room);
      this.renderReply();
    }
    const row = this.log.addPending(s, { nonce, body, room, user: this.me.username, reply_to: reply, attachments });
    this.drafts.delete(room);
    this.saveOutbox();
    this.sendOrWait(nonce, row.msg);
    // Without a socket it stays pending and goes out after the next `ready`.
  }

  /**
   * A message refused for going too fast waits (still unsent, so it stays in the outbox) and
   * goes again by itself once the rate allows: those waiting go one at a time, in the order
   * written, the next as soon as one is stored. Ten refusals of one message make it "Not
   * sent" (Retry). Whether it waits.
   */
  sendLater(nonce, ms) {
    const wait = this.rateWait;
    const tries = (wait.tries.get(nonce) || 0) + 1;
    if (tries > 10) return false;
    if (!this.log.markRetrying(nonce, 'waiting')) return false;
    wait.tries.set(nonce, tries);
    if (wait.inFlight === nonce) {
      wait.inFlight = null;
      wait.nonces.unshift(nonce);
    } else if (!wait.nonces.includes(nonce)) {
      wait.nonces.push(nonce);
    }
    if (!wait.inFlight) this.sendNextWaiting(ms);
    return true;
  }

  /** Send pending message `m` (`nonce`) now, or behind messages waiting for the rate. */
  sendOrWait(nonce, m) {
    const wait = this.rateWait;
    if (wait.nonces.length || wait.inFlight) {
      wait.nonces.push(nonce);
      this.log.markRetrying(nonce, 'waiting');
    } else if (this.socket) {
      this.socket.send(sendFrame(m));
    }
  }

  /** Send the first message waiting for the rate after `ms`. */
  sendNextWaiting(ms) {
    const wait = this.rateWait;
    wait.inFlight = null;
    clearTimeout(wait.timer);
    if (!wait.nonces.length) return;
    const session = this.session;
    wait.timer = setTimeout(() => {
      wait.timer = null;
      if (session !== this.session || this.rateWait !== wait) return;
      while (wait.nonces.length) {
        const nonce = wait.nonces.shift();
        // Not one discarded meanwhile.
        const m = this.log.markRetrying(nonce);
        if (!m) continue;
        wait.inFlight = nonce;
        if (this.socket) this.socket.send(sendFrame(m));
        return;
      }
    }, ms > 0 ? ms + Math.floor(Math.random() * 100) : 0);
  }

  retry(nonce) {
    const m = this.log.markRetrying(nonce);
    if (!m) return;
    this.saveOutbox();
    this.composer.clearNotice(true);
    this.rateWait.tries.delete(nonce); // a fresh count of refusals
    this.sendOrWait(nonce, m);
    this.composer.focus();
  }

  // ---- replies, reactions, edits and deletions ----------------------------------------

  /** What the reader may do with message `row` of the room log `s` (null: nothing). */
  permissions(s, row) {
    const m = row.msg;
    if (!this.me || row.pending || m.id == null || m.deleted) return null;
    const room = this.store.get(s.room);
    const member = Boolean(room) && !s.preview;
    const own = this.isMe(m.user);
    const inWindow = editWindowOpen(m.ts);
    const moderator = member && room.kind !== 'dm' && room.created_by != null && this.isMe(room.created_by);
    return {
      reply: member,
      react: member,
      edit: own && inWindow,
      delete: (own && inWindow) || this.isAdmin || moderator,
      link: true,
    };
  }

  /**
   * "Copy link to message": its permalink on the clipboard (shown, in case it was not). The
   * notice above the message box is a live region: it is what screen readers are told, once.
   */
  async copyLink(s, row) {
    const url = permalinkFor(s.room, row.id);
    const ok = await copyText(url);
    this.composer.showNotice(ok ? `Link copied: ${url}` : `Copy this link: ${url}`, { tone: 'info', timeoutMs: ok ? 6000 : 0 });
  }

  /** A permalink was opened: the room at that message, or a note that it is not available. */
  async openPermalink(name, id, { initial = false } = {}) {
    // Superseded (another jump, or a message sent meanwhile shows the newest): nothing to say.
    if ((await this.openRoom(name, { at: id, initial })) === false) return false;
    const s = this.log.current;
    const row = s && s.room === name ? s.byId.get(id) : null;
    if (!row || row.msg.deleted) {
      this.showRoomError('That message is not available.');
      return false;
    }
    return true;
  }

  /** What sending `body` from the message box means (slash commands, see commands.js). */
  command(body) {
    const what = interpret(body);
    if (!what.command) return what;
    const room = this.store.get(this.current);
    return { run: runCommand(what.command, what.arg, { name: this.current, kind: room ? room.kind : 'room' }) };
  }

  /** Send an `edit`, `delete` or `react` frame with a nonce; false when offline. */
  sendOp(frame, own = false) {
    const op = { frame: { ...frame, nonce: makeNonce() }, own };
    if (!this.socket || !this.socket.send(op.frame)) return null;
    this.ops.set(op.frame.nonce, op);
    return op.frame.nonce;
  }

  /** The server answered the change with this nonce (the echo is the acknowledgement). */
  settleOp(nonce) {
    if (nonce) this.ops.delete(nonce);
  }

  opFailed(op, frame) {
    const text = opErrorText(op, frame);
    if (op.frame.type === 'edit') {
      const row = this.findRow(op.frame.id);
      if (row && row.editor) {
        this.log.actions.editFailed(row, text);
        return;
      }
    }
    const retryMs = Number(frame.retry_after_ms) || 0;
    this.composer.showNotice(text, { timeoutMs: frame.code === 'rate_limited' ? Math.max(3000, retryMs + 500) : 8000 });
  }

  findRow(id) {
    for (const s of this.log.rooms.values()) {
      const row = s.byId.get(id);
      if (row) return row;
    }
    return null;
  }

  react(row, emoji, on) {
    if (!this.sendOp({ type: 'react', id: row.id, emoji, on })) {
      this.composer.showNotice(OFFLINE_TEXT);
      return;
    }
    if (on) rememberEmoji(emoji);
  }

  edit(row, body) {
    const nonce = this.sendOp({ type: 'edit', id: row.id, body }, true);
    return nonce ? { nonce } : { error: OFFLINE_TEXT };
  }

  async confirmDelete(s, row) {
    const m = row.msg;
    const own = this.isMe(m.user);
    const ok = await confirmAction({
      title: 'Delete this message?',
      text: own
        ? 'It is removed for everyone in the conversation. This can’t be undone.'
        : `This message by ${m.user} is removed for everyone in the conversation. This can’t be undone.`,
      quote: m.body,
      ok: 'Delete',
    });
    if (!ok || row.msg.deleted) return;
    if (!this.sendOp({ type: 'delete', id: row.id }, own)) {
      this.composer.showNotice(OFFLINE_TEXT);
      return;
    }
    if (row.el.isConnected) row.el.focus({ preventScroll: true });
  }

  /**
   * The message being edited was deleted meanwhile: say so, politely, and keep the typed text:
   * in the Message box when it is empty, else in the notice.
   */
  editLost(text, hadFocus) {
    const typed = text.trim();
    const box = this.composer.input;
    const said = 'The message you were editing was deleted.';
    if (typed && !this.preview && !box.disabled && !box.value.trim()) {
      this.composer.setValue(typed);
      this.keepDraft();
      this.composer.showNotice(`${said} Your text is in the message box.`, { tone: 'info', polite: true, timeoutMs: 10000 });
      if (hadFocus) box.focus({ preventScroll: true });
      return;
    }
    this.composer.showNotice(typed ? `${said} Your text: ${typed}` : said, { tone: 'info', polite: true, timeoutMs: typed ? 0 : 6000 });
    if (hadFocus) this.focusConversation();
  }

  /** "Reply": the next message sent in this room answers `row`. */
  startReply(s, row) {
    const m = row.msg;
    this.replies.set(s.room, { id: m.id, user: m.user, excerpt: excerpt(m.body) });
    this.renderReply();
    // Asked for: focus the box even where the on-screen keyboard then opens.
    this.composer.input.focus({ preventScroll: true });
  }

  cancelReply(focus) {
    if (!this.replies.delete(this.current)) return;
    this.renderReply();
    if (focus) this.composer.input.focus({ preventScroll: true });
  }

  /** The "Replying to …" bar above the message box, for the open room. */
  renderReply() {
    const r = this.preview ? null : this.replies.get(this.current);
    const bar = $('#reply-bar');
    const input = this.composer.input;
    const described = (input.getAttribute('aria-describedby') || '').split(/\s+/).filter((x) => x && x !== 'reply-text');
    bar.hidden = !r;
    if (r) {
      const text = plainText(r.excerpt) || String(r.excerpt || '').trim();
      // Who by their display name, as the message's header says, with the @username beside it.
      const name = this.profiles.name(r.user);
      $('#reply-text').replaceChildren(
        'Replying to ',
        h('strong', { class: 'reply-author', dir: 'auto', title: `@${r.user}` }, name),
        name !== r.user ? h('span', { class: 'reply-handle' }, ` @${r.user}`) : '',
        text ? ': ' : '',
        text ? h('span', { class: 'reply-excerpt', dir: 'auto' }, text) : '');
      described.unshift('reply-text');
    }
    input.setAttribute('aria-describedby', described.join(' '));
  }

  /** A click on a reply's quote: show the message it answers, loading history around it. */
  async showOriginal(s, row) {
    const id = row.msg.reply_to && row.msg.reply_to.id;
    if (typeof id !== 'number') return;
    if (s.byId.has(id)) {
      this.log.highlight(id);
    } else {
      await this.openRoom(s.room, { at: id });
    }
    const target = this.log.current && this.log.current.byId.get(id);
    if (target) target.el.focus({ preventScroll: true });
  }

  /** Up arrow in the empty message box: edit the reader's last message here. */
  onComposerKey(e) {
    if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey || e.isComposing) return false;
    if (e.key === 'Escape' && this.replies.has(this.current) && !this.preview) {
      e.preventDefault();
      e.stopPropagation();
      this.cancelReply(false);
      return true;
    }
    if (e.key !== 'ArrowUp' || this.composer.input.value !== '') return false;
    const s = this.log.current;
    if (!s) return false;
    for (let i = s.confirmed.length - 1; i >= 0; i--) {
      const row = s.confirmed[i];
      if (!row.own || row.msg.deleted) continue;
      const may = this.permissions(s, row);
      if (!may || !may.edit) return false;
      e.preventDefault();
      this.log.actions.startEdit(row, { returnTo: this.composer.input });
      return true;
    }
    return false;
  }

  onEdited(f) {
    this.noteId(f.seq);
    const s = this.log.state(f.room);
    if (s) {
      const row = this.log.applyEdited(s, f);
      if (row && f.nonce) this.log.actions.editSaved(row, f.nonce);
    }
    this.settleOp(f.nonce);
    const r = this.replies.get(f.room);
    if (r && r.id === f.id && f.body) {
      r.excerpt = excerpt(f.body);
      if (f.room === this.current) this.renderReply();
    }
  }

  onDeleted(f) {
    this.noteId(f.seq);
    const s = this.log.state(f.room);
    const before = s ? this.log.applyDeleted(s, f) : null;
    this.settleOp(f.nonce);
    const r = this.replies.get(f.room);
    if (r && r.id === f.id) {
      this.replies.delete(f.room);
      if (f.room === this.current) {
        this.renderReply();
        this.composer.showNotice('The message you were replying to was deleted.', { tone: 'info', polite: true, timeoutMs: 6000 });
      }
    }
    // A deleted message no longer counts as unread (the server's counts already knew of
    // deletions up to the last `ready`).
    const room = this.store.get(f.room);
    if (room && before && !before.deleted && typeof f.seq === 'number' && f.seq > this.readyHead
        && !this.isMe(before.user) && f.id > room.last_read && room.unread > 0) {
      room.unread -= 1;
      if (room.mentions > 0 && mentions(before.body, this.me.username)) room.mentions -= 1;
      this.queueRender();
    }
  }

  onReaction(f) {
    this.noteId(f.seq);
    const s = this.log.state(f.room);
    if (s) this.log.applyReaction(s, f);
    this.settleOp(f.nonce);
  }

  onPreview(f) {
    this.noteId(f.seq);
    const s = this.log.state(f.room);
    if (s) this.log.applyPreview(s, f);
  }

  /** Take the link preview of the user's own message away (the `preview` frame follows). */
  removePreview(row) {
    api.removePreview(row.id).catch((e) => {
      this.composer.showNotice(e && e.message ? e.message : 'The preview could not be removed.', { tone: 'error' });
    });
  }

  // ---- read markers -------------------------------------------------------------------

  /** The newest message of the open room may be on screen: mark it read (debounced). */
  scheduleRead() {
    if (this.readTimer) return;
    this.readTimer = setTimeout(() => {
      this.readTimer = null;
      this.markRead();
    }, READ_DEBOUNCE_MS);
  }

  markRead() {
    if (!this.me || document.visibilityState !== 'visible' || this.preview) return;
    const s = this.log.current;
    const room = s && this.store.get(s.room);
    if (!room || !this.log.newestVisible()) return;
    // Not past messages that are not loaded yet (below a window into the past).
    const id = s.windowNewestId;
    if (!id || id <= room.last_read) {
      if (room.unread === 0 && room.mentions === 0) return;
      if (!id || id < room.last_id) return;
    }
    room.last_read = Math.max(room.last_read, id);
    if (id >= room.last_id) {
      room.unread = 0;
      room.mentions = 0;
    }
    this.notifier.closeFor(room.name);
    const sent = this.socket && this.socket.send({ type: 'read', room: room.name, id });
    if (!sent) api.read(room.name, id).then((d) => d && this.onRead({ room: room.name, id: d.last_read, unread: d.unread, mentions: d.mentions })).catch(() => {});
    this.queueRender();
  }

  // ---- bits of UI -----------------------------------------------------------------

  isMe(user) { return Boolean(this.me) && String(user).toLowerCase() === this.me.username.toLowerCase(); }

  noteId(id) {
    if (typeof id === 'number' && id > this.lastId) this.lastId = id;
  }

  /** Usernames for @mentions: this room's members first, then everyone else this page knows. */
  mentionCandidates() {
    const out = [];
    const members = this.members.get(this.current) || [];
    for (const m of members) out.push(m.username);
    const room = this.store.get(this.current);
    if (room && room.kind === 'dm') out.push(...room.users);
    if (!members.length) {
      out.push(...this.online.names());
      out.push(...this.store.knownUsers());
    }
    return out.sort((a, b) => {
      const ao = this.online.has(a) ? 0 : 1;
      const bo = this.online.has(b) ? 0 : 1;
      return ao - bo || a.localeCompare(b, undefined, { sensitivity: 'base' });
    });
  }

  queueRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
    // rAF does not run in hidden tabs: make sure the title still updates.
    if (document.visibilityState !== 'visible') {
      setTimeout(() => {
        if (this.renderQueued) {
          this.renderQueued = false;
          this.render();
        }
      }, 200);
    }
  }

  /** The open room's draft, as typed so far. */
  keepDraft() {
    if (!this.me || this.preview || !this.current) return;
    this.drafts.set(this.current, this.composer.input.value);
  }

  /** What has not reached the server yet, for the next page load. */
  saveOutbox() {
    if (!this.me) return;
    // "Not sent" ones too, so a reload or a crash loses no text: they come back as such.
    const taken = this.drafts.setOutbox(this.log.unsent(true).map((m) => pickDefined({
      nonce: m.nonce,
      room: m.room,
      body: m.body,
      reply_to: m.reply_to && typeof m.reply_to.id === 'number' ? m.reply_to : undefined,
      attachments: Array.isArray(m.attachments) && m.attachments.length ? m.attachments : undefined,
      failed: m.failed || undefined,
      reason: m.failed ? m.reason : undefined,
    })));
    if (taken.length) this.letGoUnsent(taken);
  }

  /**
   * Another tab of this browser took these unsent messages out of the shared outbox: it
   * discarded them, or the server stored them (the message itself then arrives as any other
   * does). This page stops showing and sending them.
   */
  letGoUnsent(nonces) {
    if (this.root.hidden) return;
    for (const nonce of nonces) {
      this.log.discard(nonce);
      removeWaiting(this.rateWait, nonce);
    }
    this.saveOutbox();
  }

  // ---- files ----------------------------------------------------------------------

  /** The "Attach file" button, pasting files into the box and dropping them on the conversation. */
  setUpFileInput() {
    const input = $('#file-input');
    $('#attach-btn').addEventListener('click', () => input.click());
    input.addEventListener('change', () => {
      this.attach(input.files);
      input.value = '';
    });
    $('#composer-input').addEventListener('paste', (e) => {
      const files = e.clipboardData && e.clipboardData.files;
      if (!files || !files.length) return;
      e.preventDefault();
      this.attach(files);
    });
    const zone = $('#conversation');
    const overlay = $('#drop-overlay');
    const carriesFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
    let depth = 0;
    zone.addEventListener('dragenter', (e) => {
      if (!carriesFiles(e)) return;
      depth += 1;
      overlay.hidden = false;
    });
    zone.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1);
      if (!depth) overlay.hidden = true;
    });
    zone.addEventListener('dragover', (e) => {
      if (!carriesFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
    });
    zone.addEventListener('drop', (e) => {
      depth = 0;
      overlay.hidden = true;
      if (!e.dataTransfer || !e.dataTransfer.files.length) return;
      e.preventDefault();
      this.attach(e.dataTransfer.files);
    });
  }

  /** Start uploading `files` for the next message of the open room. */
  attach(files) {
    if (!this.me || this.preview || !this.current) {
      this.composer.showNotice('Join the room to send files to it.');
      return;
    }
    if (this.tray.room !== this.current) this.tray.show(this.current);
    this.tray.add(files);
    this.composer.focus();
  }

  /**
   * A conversation was opened (from a dialog, the quick switcher, the online list...): the
   * focus goes to its "Message" box where a keyboard is at hand, else (a touch screen, where
   * focusing the box would open the on-screen keyboard, or a room read without joining) to the
   * conversation's heading.
   */
  focusConversation() {
    if (this.root.hidden || document.querySelector('dialog[open]')) return;
    if (this.composer.focus()) return;
    const heading = $('#room-heading');
    if (heading) heading.focus({ preventScroll: true });
  }

  /** Who is signed in: the avatar on the account button and the name in its menu. */
  showMe(username) {
    setText($('#me-name'), username);
    setAvatar($('#me-avatar'), username);
    setAvatar($('#account-avatar'), username);
    paintAvatar($('#me-avatar'), username, this.profiles);
    paintAvatar($('#account-avatar'), username, this.profiles);
    this.accountToggle.title = `Signed in as ${username}`;
  }

  setAccountOpen(open, focusToggle = true) {
    const was = this.accountOpen;
    this.accountOpen = open;
    this.accountToggle.setAttribute('aria-expanded', open ? 'true' : 'false');
    this.accountMenu.hidden = !open;
    if (open && !was) {
      this.setPanelOpen(false);
      const first = Array.from(this.accountMenu.querySelectorAll('button')).find((b) => b.getClientRects().length);
      if (first) first.focus({ preventScroll: true });
    } else if (!open && was && focusToggle) {
      this.accountToggle.focus({ preventScroll: true });
    }
  }

  /**
   * The page title counts what the sidebar's badges count: the open room has none while it is
   * on screen, and counts again while the page is hidden (another tab is in front).
   */
  updateTitle() {
    const shown = document.visibilityState === 'visible';
    let total = 0;
    for (const r of this.store.all()) if (!(shown && r.name === this.current)) total += this.store.countFor(r);
    document.title = total > 0 ? `(${total}) Hearth` : 'Hearth';
  }

  /** Sidebar, page title and the drawer button's dot. */
  render() {
    this.saveOutbox();
    this.renderSidebar();
    this.updateTitle();
    const elsewhere = this.store.all().some((r) => r.name !== this.current && this.store.countFor(r) > 0);
    $('#drawer-dot').hidden = !elsewhere;
    this.drawerToggle.setAttribute('aria-label', 'Open rooms');
    this.drawerToggle.title = elsewhere ? 'Rooms (unread messages)' : 'Rooms';
    this.switcher.refresh();
    this.search.roomsChanged();
  }

  /**
   * The sidebar's lists. Until the room list has arrived (a page opened while the server is out
   * of reach) an empty list says so rather than "No conversations yet.".
   */
  renderSidebar() {
    this.sidebar.render(this.current, { offline: this.connEl.dataset.state !== 'connected' });
  }

  refreshHeaderAndLog() {
    this.refreshHeader();
    const room = this.store.get(this.current);
    if (room) this.composer.setRoom(this.store.label(room));
  }

  refreshHeader() {
    const room = this.store.get(this.current) || this.preview;
    const icon = $('#room-icon');
    if (!room) return;
    const isDm = room.kind === 'dm';
    setText($('#room-name'), this.store.title(room));
    icon.replaceChildren();
    icon.className = isDm ? 'room-hash room-hash-dm' : 'room-hash';
    if (isDm) icon.textContent = '@';
    else if (room.public) icon.textContent = '#';
    else icon.append(lockIcon());
    const topic = isDm ? (room.users.length > 2 ? `Group conversation with ${room.users.length} people` : 'Direct message') : room.topic;
    const topicEl = $('#room-topic');
    setText(topicEl, topic || '');
    topicEl.hidden = !topic;
    this.renderLogStart(room);
    const members = this.members.get(room.name);
    const count = members ? members.length : room.members;
    setText($('#room-members-count'), count == null ? '–' : String(count));
    setText($('#room-members-label'), count === 1 ? ' member, show list' : ' members, show list');
    $('#room-invite').hidden = isDm || Boolean(this.preview);
    $('#room-settings').hidden = Boolean(this.preview);
    const bar = $('#preview-bar');
    bar.hidden = !this.preview;
    if (this.preview) setText($('#preview-text'), `You are reading #${this.preview.name} without being a member.`);
    $('#composer').hidden = Boolean(this.preview);
    this.renderReply();
  }

  /**
   * "Beginning of #general" with a "#" (a lock for a private room), or for a direct message
   * "Beginning of your conversation with alice" with their picture (a person for a group).
   */
  renderLogStart(room) {
    const isDm = room.kind === 'dm';
    const icon = $('#log-start-icon');
    icon.replaceChildren();
    icon.classList.toggle('is-person', isDm);
    if (isDm) {
      const others = this.store.others(room);
      if (others.length === 1) {
        const face = avatar(others[0], 'lg');
        paintAvatar(face, others[0], this.profiles);
        icon.append(face);
      } else {
        icon.append(personIcon());
      }
    } else if (room.public === false) {
      icon.append(lockIcon());
    } else {
      icon.textContent = '#';
    }
    setText($('#log-start-lead'), isDm ? 'Beginning of your conversation with ' : 'Beginning of ');
    setText($('#log-start-sub'), isDm
      ? 'Only the people in this conversation can read it. Say hello!'
      : 'This is the very start of the conversation. Say hello!');
  }

  showRoomError(text) {
    const el = $('#room-error');
    setText(el, text);
    el.hidden = !text;
    clearTimeout(this.roomErrorTimer);
    if (text) this.roomErrorTimer = setTimeout(() => this.showRoomError(''), 12000);
  }

  /**
   * Tell screen readers when the connection is lost (and still lost 3 s later) and when it
   * is back after that: not each attempt to reconnect, which the badge shows (it is not a
   * live region for that reason).
   */
  announceConnection(state) {
    const up = state === 'connected';
    // A first connection that is slow to come is not a lost one.
    if (!up && !this.connUpOnce) return;
    if (up) {
      this.connUpOnce = true;
      clearTimeout(this.connLostTimer);
      this.connLostTimer = null;
      if (this.connLostSaid) this.announce('Connected again.');
      this.connLostSaid = false;
    } else if (!this.connLostTimer && !this.connLostSaid) {
      this.connLostTimer = setTimeout(() => {
        this.connLostTimer = null;
        this.connLostSaid = true;
        this.announce('Connection lost. Reconnecting; messages you write are kept.');
      }, 3000);
    }
  }

  /** A polite announcement for screen readers (one at a time). */
  announce(text) {
    const el = $('#announcer');
    setText(el, '');
    setTimeout(() => setText(el, text), 50);
  }

  setConnection(state) {
    this.announceConnection(state);
    this.connEl.dataset.state = state;
    setText(this.connText, CONNECTION_TEXT[state] || state);
    // Where the text does not fit (phones) the badge shows one word instead (chat.css): how the
    // first connection goes, then "Offline" whenever it is down, retrying or not, so that the
    // word does not flicker with each attempt.
    if (state !== 'connecting') this.connSettled = true;
    this.connEl.dataset.short = state === 'connected' ? '' : this.connSettled ? 'Offline' : 'Connecting…';
    this.connEl.title = state === 'offline'
      ? 'Can’t reach the server. Messages you write are kept and sent when it is back.'
      : state === 'connecting' ? 'Connecting to the server…' : 'Connected: messages arrive live.';
    this.root.classList.toggle('is-offline', state !== 'connected');
    if (!this.store.known && !this.root.hidden) this.renderSidebar();
    // Who is online is only known while connected: the next `ready` fills the list again.
    if (state !== 'connected') this.online.offline();
  }

  setPanelOpen(open) {
    this.panelOpen = open;
    this.onlineToggle.setAttribute('aria-expanded', open ? 'true' : 'false');
    this.onlinePanel.classList.toggle('is-open', open);
  }

  setDrawerOpen(open) {
    const was = this.drawerOpen;
    this.drawerOpen = open && this.narrow.matches;
    this.drawerToggle.setAttribute('aria-expanded', this.drawerOpen ? 'true' : 'false');
    this.sidebarEl.classList.toggle('is-open', this.drawerOpen);
    this.backdrop.hidden = !this.drawerOpen;
    this.syncDrawerA11y();
    if (this.drawerOpen && !was) {
      const target = this.sidebarEl.querySelector('[aria-current="page"]') || this.sidebarEl.querySelector('a, button');
      if (target) target.focus();
    } else if (!this.drawerOpen && was && this.sidebarEl.contains(document.activeElement)) {
      this.drawerToggle.focus();
    }
  }

  /**
   * A closed drawer is out of the tab order and the accessibility tree; an open one
   * is modal: everything behind it is, until it closes. Search results that cover the
   * conversation (up to 1024 px wide) put what they cover out of reach the same way.
   */
  syncDrawerA11y() {
    const hiddenDrawer = this.narrow.matches && !this.drawerOpen;
    this.sidebarEl.toggleAttribute('inert', hiddenDrawer);
    const modal = this.narrow.matches && this.drawerOpen;
    const covered = Boolean(this.search && this.search.covers());
    for (const el of this.root.querySelectorAll('.topbar, #search-panel')) {
      el.toggleAttribute('inert', modal);
    }
    for (const el of this.root.querySelectorAll('#conversation, #online-panel')) {
      el.toggleAttribute('inert', modal || covered);
    }
  }

  onKey(e) {
    if (this.root.hidden) return;
    if ((e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && (e.key === 'k' || e.key === 'K')) {
      e.preventDefault();
      if (this.switcher.isOpen) this.switcher.close();
      else {
        this.dialogs.closeAll();
        this.switcher.open();
      }
      return;
    }
    if (e.key !== 'Escape' || e.defaultPrevented) return;
    // Open <dialog>s close themselves on Escape.
    if (document.querySelector('dialog[open]')) return;
    if (this.drawerOpen) {
      this.setDrawerOpen(false);
      this.drawerToggle.focus();
    } else if (this.accountOpen) {
      this.setAccountOpen(false);
    } else if (this.panelOpen) {
      this.setPanelOpen(false);
      this.accountToggle.focus();
    } else if (this.search.isOpen) {
      this.search.close(true);
    }
  }
}

function roomErrorText(err, label) {
  if (!(err instanceof ApiError)) return 'Something went wrong. Please try again.';
  switch (err.code) {
    case 'not_a_member': return `You are not a member of ${label}. Ask a member to invite you.`;
    case 'unknown_room': return `There is no room called ${label}.`;
    default: return err.message;
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
    case 'unknown_message': return 'The message you replied to was deleted.';
    default: return frame.message || 'The server refused that message.';
  }
}

function shortReason(frame) {
  switch (frame.code) {
    case 'rate_limited': return 'too many messages at once';
    case 'message_too_long': return 'too long';
    case 'empty_message': return 'empty';
    case 'not_a_member': return 'not a member';
    case 'unknown_message': return 'the message it answers was deleted';
    case 'unknown_upload': return 'its files are gone';
    default: return frame.message || frame.code || '';
  }
}

/** A `send` frame for a (pending) message, with the id of the message it answers. */
function sendFrame(m) {
  const frame = { type: 'send', room: m.room, body: m.body, nonce: m.nonce };
  if (m.reply_to && typeof m.reply_to.id === 'number') frame.reply_to = m.reply_to.id;
  if (Array.isArray(m.attachments) && m.attachments.length) frame.attachments = m.attachments.map((a) => a.id);
  return frame;
}

/** `messages.edit_window_minutes`, as config.js gives it (0: no limit). */
function editWindowMinutes() {
  const n = Number(window.HEARTH && window.HEARTH.edit_window_minutes);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** May an author still edit (or delete) a message sent at `ts`? */
function editWindowOpen(ts) {
  const minutes = editWindowMinutes();
  return !minutes || Date.now() - parseTs(ts).getTime() < minutes * 60_000;
}

function opErrorText(op, frame) {
  const type = op.frame.type;
  const minutes = editWindowMinutes();
  const span = `${minutes} minute${minutes === 1 ? '' : 's'}`;
  switch (frame.code) {
    case 'forbidden':
      if (type === 'edit') return minutes ? `Messages can only be edited within ${span} of sending them.` : 'You can only edit your own messages.';
      if (op.own && minutes) return `Your messages can only be deleted within ${span} of sending them.`;
      return 'Only its author, the room’s creator or an administrator can delete that message.';
    case 'unknown_message':
      if (type === 'delete') return 'That message is already gone.';
      return type === 'edit' ? 'That message was deleted, so it can’t be edited.' : 'That message was deleted, so it can’t take reactions.';
    case 'invalid_emoji': return 'That can’t be used as a reaction: choose a single emoji.';
    case 'too_many_reactions': return 'That message already has 20 different reactions. Add one of those instead.';
    case 'not_a_member': return 'Join the room to react to its messages.';
    case 'empty_message': return 'A message can’t be empty. To remove it, use Delete instead.';
    default: return describeError(frame);
  }
}

function pickDefined(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) if (v !== undefined) out[k] = v;
  return out;
}

/** The room named in the address (`#general`, `#dm%3Aalice%2Cbob`, `#general/1234`). */
function roomFromHash() {
  return parseHash(window.location.hash).room;
}

function writeHash(name) {
  const hash = `#${encodeURIComponent(name)}`;
  if (window.location.hash !== hash) {
    try {
      window.history.replaceState(null, '', hash);
    } catch { /* ignore */ }
  }
}

function defaultWsUrl() {
  const url = new URL('ws', document.baseURI);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Messages refused for going too fast: waiting in the order written, the one sent from
 * among them, the timer that sends the next, and refusals per message. */
function newRateWait() {
  return { timer: null, nonces: [], inFlight: null, tries: new Map() };
}

/** Message `nonce` no longer waits for the rate (the one in flight has gone already). */
function removeWaiting(wait, nonce) {
  const i = wait.nonces.indexOf(nonce);
  if (i >= 0) wait.nonces.splice(i, 1);
  wait.tries.delete(nonce);
}

/** Frame `f` (held or paged while `gap` filled) naming its room as it is called now. */
function renamedIn(gap, f) {
  const now = f && typeof f.room === 'string' ? gap.renamed.get(f.room) : undefined;
  return now ? { ...f, room: now } : f;
}

