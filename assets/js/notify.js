// Desktop notifications and a short sound, both opt-in and remembered in
// localStorage. Permission is only ever asked for from a click.

const KEY_DESKTOP = 'hearth.notifications.desktop';
const KEY_SOUND = 'hearth.notifications.sound';

function load(key) {
  try { return window.localStorage.getItem(key) === '1'; } catch { return false; }
}

function save(key, on) {
  try { window.localStorage.setItem(key, on ? '1' : '0'); } catch { /* private mode: not remembered */ }
}

export const notificationsSupported = () => 'Notification' in window;

export class Notifier {
  /**
   * @param {object} o
   * @param {(room: string, id: number) => void} o.onOpen  a notification was clicked
   */
  constructor(o) {
    this.o = o;
    this.audio = null;
    this.shown = new Map(); // room -> Notification
  }

  get permission() { return notificationsSupported() ? Notification.permission : 'unsupported'; }
  get desktop() { return load(KEY_DESKTOP) && this.permission === 'granted'; }
  get wantsDesktop() { return load(KEY_DESKTOP); }
  get sound() { return load(KEY_SOUND); }

  /**
   * Turn desktop notifications on or off. Must run inside a user gesture when
   * turning on. Resolves to a sentence describing the outcome.
   */
  async setDesktop(on) {
    if (!on) {
      save(KEY_DESKTOP, false);
      return 'Desktop notifications are off.';
    }
    if (!notificationsSupported()) {
      save(KEY_DESKTOP, false);
      return 'This browser cannot show desktop notifications.';
    }
    let permission = Notification.permission;
    if (permission === 'default') {
      try {
        permission = await Notification.requestPermission();
      } catch {
        permission = Notification.permission;
      }
    }
    if (permission !== 'granted') {
      save(KEY_DESKTOP, false);
      return permission === 'denied'
        ? 'Notifications are blocked for this site. Allow them in the browser’s site settings, then try again.'
        : 'Notifications were not allowed.';
    }
    save(KEY_DESKTOP, true);
    return 'Desktop notifications are on. They appear while Hearth is in the background.';
  }

  setSound(on) {
    save(KEY_SOUND, on);
    if (on) this.beep(); // a sample, and it unlocks audio inside this click
  }

  /**
   * Something worth a notification happened.
   * @param {{room: string, id: number, title: string, body: string}} n
   */
  notify(n) {
    if (this.sound) this.beep();
    if (!this.desktop || document.visibilityState === 'visible') return;
    try {
      const old = this.shown.get(n.room);
      if (old) old.close();
      const note = new Notification(n.title, {
        body: n.body.length > 180 ? `${n.body.slice(0, 177)}…` : n.body,
        tag: `hearth-${n.room}`,
        icon: new URL('favicon.svg', document.baseURI).href,
      });
      note.onclick = () => {
        window.focus();
        note.close();
        this.o.onOpen(n.room, n.id);
      };
      note.onclose = () => {
        if (this.shown.get(n.room) === note) this.shown.delete(n.room);
      };
      this.shown.set(n.room, note);
    } catch {
      // Some platforms only allow notifications from a service worker: stay quiet.
    }
  }

  closeFor(room) {
    const note = this.shown.get(room);
    if (note) note.close();
  }

  /** A short two-tone chime, generated (no audio file). */
  beep() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    try {
      if (!this.audio) this.audio = new Ctx();
      const ctx = this.audio;
      if (ctx.state === 'suspended') ctx.resume().catch(() => {});
      const t = ctx.currentTime + 0.01;
      for (const [freq, at] of [[880, 0], [1320, 0.09]]) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.type = 'sine';
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, t + at);
        gain.gain.exponentialRampToValueAtTime(0.12, t + at + 0.015);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + at + 0.16);
        osc.connect(gain).connect(ctx.destination);
        osc.start(t + at);
        osc.stop(t + at + 0.18);
      }
    } catch {
      // No audio output: nothing to do.
    }
  }
}
