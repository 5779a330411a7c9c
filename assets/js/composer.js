// The message composer: auto-growing textarea, Enter to send, typing pings,
// length counter and a notice line for errors.

import { setText } from './dom.js';
import { charCount } from './format.js';

export const MAX_CHARS = 4000;
const COUNTER_FROM = MAX_CHARS - 500;
const TYPING_EVERY_MS = 3000;

export class Composer {
  /**
   * @param {object} o
   * @param {HTMLFormElement} o.form
   * @param {HTMLTextAreaElement} o.input
   * @param {HTMLButtonElement} o.button
   * @param {HTMLElement} o.notice   role=alert line above the box
   * @param {HTMLElement} o.counter
   * @param {HTMLElement} [o.status]  a polite live region for news that is not a problem
   * @param {(body: string) => (boolean|void)} o.onSend  `false`: not sent, keep the text
   * @param {HTMLButtonElement} [o.attach]  the "Attach file" button
   * @param {() => boolean} [o.hasFiles]  files wait to go with the message (it may be empty)
   * @param {() => void} o.onTyping
   * @param {(e: KeyboardEvent) => boolean} [o.interceptKey]  true when the key was used elsewhere
   * @param {(body: string) => object} [o.onCommand]  what sending `body` means (see
   *   commands.js `interpret`): { send } (this body instead), { error }, or { run } (a promise
   *   of { error } or { info }; the box is emptied on success)
   */
  constructor(o) {
    this.o = o;
    this.input = o.input;
    this.lastTypingAt = 0;
    this.noticeTimer = null;
    this.noticeSticky = false;

    o.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });

    this.input.addEventListener('keydown', (e) => {
      if (this.o.interceptKey && this.o.interceptKey(e)) return;
      if (e.key !== 'Enter' || e.shiftKey || e.altKey || e.isComposing || e.keyCode === 229) return;
      e.preventDefault();
      this.submit();
    });

    this.input.addEventListener('input', () => {
      this.autosize();
      this.updateCounter();
      if (!this.noticeSticky) this.clearNotice();
      if (this.input.value.trim() && Date.now() - this.lastTypingAt > TYPING_EVERY_MS) {
        this.lastTypingAt = Date.now();
        this.o.onTyping();
      }
    });

    window.addEventListener('resize', () => this.autosize());
    this.updateCounter();
  }

  /** @param {string} label "#general" or "alice, bob" */
  setRoom(label) {
    this.input.placeholder = `Message ${label}`;
  }

  /** Disable the composer (a room previewed without joining it). */
  setEnabled(on) {
    this.input.disabled = !on;
    this.o.button.disabled = !on;
    if (this.o.attach) this.o.attach.disabled = !on;
    if (on) this.updateCounter();
  }

  /**
   * Focus the box, except where that would pop up the on-screen keyboard unasked (a touch
   * screen) or the box is disabled. Whether it has the focus now.
   */
  focus() {
    if (window.matchMedia('(pointer: coarse)').matches || this.input.disabled) return false;
    this.input.focus({ preventScroll: true });
    return document.activeElement === this.input;
  }

  /** Put `text` in the box (the draft of the room just opened). */
  setValue(text) {
    this.input.value = text || '';
    this.lastTypingAt = 0;
    this.autosize();
    this.updateCounter();
  }

  reset() {
    this.input.value = '';
    this.lastTypingAt = 0;
    this.clearNotice(true);
    this.autosize();
    this.updateCounter();
  }

  submit() {
    let body = this.input.value.trim();
    if (!body && !(this.o.hasFiles && this.o.hasFiles())) {
      this.input.focus();
      return;
    }
    if (body && this.o.onCommand) {
      const what = this.o.onCommand(body);
      if (what.error) {
        this.showNotice(what.error);
        return;
      }
      if (what.run) {
        this.runCommand(what.run);
        return;
      }
      body = what.send;
    }
    const n = charCount(body);
    if (n > MAX_CHARS) {
      this.showNotice(`That message is too long: ${n.toLocaleString()} characters, the limit is ${MAX_CHARS.toLocaleString()}.`);
      return;
    }
    if (this.o.onSend(body) === false) return;
    this.input.value = '';
    this.lastTypingAt = 0;
    this.autosize();
    this.updateCounter();
    this.input.focus();
  }

  /** A command that is not a message: the box is emptied once it succeeded. */
  async runCommand(run) {
    const sent = this.input.value;
    this.o.button.disabled = true;
    let result;
    try {
      result = await run;
    } finally {
      this.updateCounter();
    }
    if (result.error) {
      this.showNotice(result.error);
      return;
    }
    if (this.input.value === sent) {
      this.input.value = '';
      this.input.dispatchEvent(new Event('input', { bubbles: true }));
    }
    if (result.info) this.showNotice(result.info, { tone: 'info', timeoutMs: 4000 });
    this.input.focus();
  }

  autosize() {
    const el = this.input;
    el.style.height = 'auto';
    const max = Math.max(120, Math.round(window.innerHeight * 0.4));
    const height = Math.min(el.scrollHeight, max);
    el.style.height = `${height}px`;
    el.classList.toggle('is-scrolling', el.scrollHeight > max);
  }

  updateCounter() {
    const n = charCount(this.input.value.trim());
    const counter = this.o.counter;
    const over = n > MAX_CHARS;
    this.o.button.disabled = over;
    this.o.form.classList.toggle('is-over', over);
    if (n < COUNTER_FROM) {
      counter.hidden = true;
      return;
    }
    counter.hidden = false;
    counter.classList.toggle('is-over', over);
    setText(counter, over
      ? `${(n - MAX_CHARS).toLocaleString()} over the limit`
      : `${(MAX_CHARS - n).toLocaleString()} characters left`);
  }

  /**
   * Show a short message above the composer.
   * @param {string} text
   * @param {object} [opts]
   * @param {number} [opts.timeoutMs] hide after this long (default 8 s; 0 = until cleared)
   * @param {'error'|'info'} [opts.tone]
   * @param {boolean} [opts.polite] said politely (a status, not an alert): news, not a problem
   */
  showNotice(text, { timeoutMs = 8000, tone = 'error', polite = false } = {}) {
    const el = this.o.notice;
    clearTimeout(this.noticeTimer);
    el.dataset.tone = tone;
    // The line is an alert; polite news is shown there (aria-hidden, so it is not said
    // assertively) and said in the polite status line beside it.
    if (polite) el.setAttribute('aria-hidden', 'true');
    else el.removeAttribute('aria-hidden');
    if (this.o.status) {
      setText(this.o.status, '');
      if (polite) setTimeout(() => setText(this.o.status, text), 50);
    }
    setText(el, text);
    this.noticeSticky = true;
    // Typing right away should not hide what just appeared.
    setTimeout(() => { this.noticeSticky = false; }, 1500);
    if (timeoutMs) this.noticeTimer = setTimeout(() => this.clearNotice(true), timeoutMs);
  }

  clearNotice(force = false) {
    if (!force && !this.o.notice.textContent) return;
    clearTimeout(this.noticeTimer);
    setText(this.o.notice, '');
    this.o.notice.removeAttribute('aria-hidden');
    if (this.o.status) setText(this.o.status, '');
  }
}
