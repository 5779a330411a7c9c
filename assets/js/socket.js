// WebSocket connection with automatic reconnect (exponential backoff + jitter).
//
// States reported through onState:
//   'connecting' – a connection attempt is in progress (or a quick retry is due)
//   'connected'  – the server sent `ready`
//   'offline'    – waiting before the next attempt (after repeated failures)

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
const CONNECT_TIMEOUT_MS = 12_000;

export const CLOSE_SESSION_ENDED = 4001;
export const CLOSE_TOO_SLOW = 4008;

export class ChatSocket {
  /**
   * @param {object} opts
   * @param {string} opts.url           base ws:// or wss:// URL of /ws
   * @param {() => number|null} opts.since   the highest message id already seen (null: none yet)
   * @param {(frame: object) => void} opts.onFrame
   * @param {(state: string, info: object) => void} opts.onState
   * @param {() => void} opts.onSessionEnded   close code 4001
   * @param {() => void} opts.onConnectFailed  a connection closed before `ready`
   */
  constructor(opts) {
    this.opts = opts;
    this.ws = null;
    this.ready = false;
    this.stopped = true;
    this.attempt = 0;
    this.retryTimer = null;
    this.connectTimer = null;
    this.state = 'connecting';
    this.nextRetryAt = 0;

    this.handleOnline = () => this.reconnectNow();
    this.handleVisible = () => {
      if (document.visibilityState === 'visible') this.reconnectNow();
    };
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    window.addEventListener('online', this.handleOnline);
    document.addEventListener('visibilitychange', this.handleVisible);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.handleOnline);
    document.removeEventListener('visibilitychange', this.handleVisible);
    clearTimeout(this.retryTimer);
    clearTimeout(this.connectTimer);
    this.retryTimer = null;
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try { ws.close(1000, 'bye'); } catch { /* already closed */ }
    }
  }

  /** Skip the wait and try now (used when the browser comes back online). */
  reconnectNow() {
    if (this.stopped || this.ws || !this.retryTimer) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  get isReady() { return this.ready && this.ws && this.ws.readyState === WebSocket.OPEN; }

  /** Send a frame; returns false when not connected (the caller keeps it). */
  send(frame) {
    if (!this.isReady) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  setState(state, info = {}) {
    this.state = state;
    this.opts.onState(state, info);
  }

  buildUrl() {
    const url = new URL(this.opts.url, window.location.href);
    if (url.protocol === 'http:') url.protocol = 'ws:';
    if (url.protocol === 'https:') url.protocol = 'wss:';
    // No `since` on the very first connection: nothing to replay yet.
    const since = this.opts.since();
    if (since != null) url.searchParams.set('since', String(Math.max(0, since)));
    return url.toString();
  }

  connect() {
    if (this.stopped) return;
    this.setState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.buildUrl());
    } catch {
      this.scheduleRetry(false);
      return;
    }
    this.ws = ws;
    this.ready = false;

    clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      // Neither opened nor got `ready` in time: give up on this attempt.
      if (this.ws === ws && !this.ready) {
        try { ws.close(); } catch { /* ignore */ }
        this.onClosed(ws, { code: 1006 });
      }
    }, CONNECT_TIMEOUT_MS);

    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // ignore anything that is not JSON
      }
      if (!frame || typeof frame !== 'object') return;
      if (frame.type === 'ready') {
        clearTimeout(this.connectTimer);
        this.ready = true;
        this.attempt = 0;
        this.setState('connected');
      }
      this.opts.onFrame(frame);
    };

    ws.onclose = (event) => this.onClosed(ws, event);
    ws.onerror = () => { /* a close event always follows */ };
  }

  onClosed(ws, event) {
    if (this.ws !== ws) return;
    clearTimeout(this.connectTimer);
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    const wasReady = this.ready;
    this.ws = null;
    this.ready = false;
    if (this.stopped) return;

    if (event.code === CLOSE_SESSION_ENDED) {
      this.stop();
      this.opts.onSessionEnded();
      return;
    }
    if (!wasReady) this.opts.onConnectFailed();
    // A server restart (1001) or "too slow" (4008) is worth a quick retry.
    const quick = wasReady && (event.code === 1001 || event.code === CLOSE_TOO_SLOW);
    this.scheduleRetry(quick);
  }

  scheduleRetry(quick) {
    if (this.stopped) return;
    const n = quick ? 0 : this.attempt;
    this.attempt = Math.min(this.attempt + 1, 20);
    const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** n);
    // "Equal jitter": between half and all of the ceiling.
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.nextRetryAt = Date.now() + delay;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
    // A first quick retry still reads as "Connecting…"; after that we are offline.
    const offline = this.attempt > 2 || navigator.onLine === false;
    this.setState(offline ? 'offline' : 'connecting', { retryAt: this.nextRetryAt });
  }
}
