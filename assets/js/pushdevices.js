// Settings → Notifications → "Devices that receive pushes": every browser or phone of this
// account that receives pushes, each with what it wants pushed (mentions and direct messages,
// every message, nothing for now), quiet hours on its own clock, and a way to stop it. Any
// device can be managed from any other (the phone's quiet hours from the laptop); this one
// is marked "this device" and sends its clock with each change.

import { api, ApiError } from './api.js';
import { $, h, setText } from './dom.js';
import { dayLabel, formatFull, formatTime, parseTs } from './format.js';
import { currentEndpoint, disablePush, sameEndpoint, utcOffset } from './pushsub.js';

const LEVELS = [
  ['mentions', 'Mentions and direct messages'],
  ['all', 'Every message'],
  ['nothing', 'Nothing for now'],
];

/** What each level means, for the status line. */
const SAID = {
  mentions: 'mentions and direct messages',
  all: 'every message of rooms set to “Every message”, mentions and direct messages',
  nothing: 'nothing for now',
};

/** Default quiet hours when they are switched on. */
const NIGHT = { start: '22:00', end: '07:00' };

/** Which browser's push service an endpoint belongs to: a name people recognise. */
function serviceName(endpoint) {
  let host = '';
  try {
    host = new URL(endpoint).hostname;
  } catch {
    return 'A browser';
  }
  if (host.endsWith('googleapis.com')) return 'Chrome';
  if (host.endsWith('mozilla.com')) return 'Firefox';
  if (host.endsWith('push.apple.com')) return 'Safari';
  if (host.endsWith('notify.windows.com')) return 'Edge';
  return host;
}

/** Names for each device, numbered when two share one ("Firefox", "Firefox 2"). */
function deviceNames(devices) {
  const seen = new Map();
  return devices.map((d) => {
    const base = serviceName(d.endpoint);
    const n = (seen.get(base) || 0) + 1;
    seen.set(base, n);
    const total = devices.filter((x) => serviceName(x.endpoint) === base).length;
    return total > 1 ? `${base} ${n}` : base;
  });
}

function when(ms) {
  const d = parseTs(ms);
  return h('time', { datetime: d.toISOString(), title: formatFull(d) }, `${dayLabel(d)} at ${formatTime(d)}`);
}

export class PushDevices {
  /** `app`: the chat (for `sessionEnded`); `status`: where outcomes are read out. */
  constructor(app, status) {
    this.app = app;
    this.status = status;
    this.box = $('#push-devices');
    this.list = $('#push-device-list');
    this.error = $('#push-devices-error');
    this.seq = 0;
  }

  /** Fetch the devices again; resolves to whether this browser is one of them. */
  async load() {
    const seq = ++this.seq;
    setText(this.error, '');
    let devices;
    let here;
    try {
      [devices, here] = await Promise.all([
        api.pushDevices().then((d) => (d && Array.isArray(d.subscriptions) ? d.subscriptions : [])),
        currentEndpoint().catch(() => null),
      ]);
    } catch (err) {
      if (seq !== this.seq) return false;
      if (err instanceof ApiError && err.isUnauthorized) {
        this.app.sessionEnded();
        return false;
      }
      this.box.hidden = false;
      setText(this.error, err instanceof ApiError ? err.message : 'Could not load the devices that receive pushes.');
      return false;
    }
    if (seq !== this.seq) return false;
    const names = deviceNames(devices);
    const rows = devices.map((d, i) => this.row(d, names[i], Boolean(here) && sameEndpoint(d.endpoint, here)));
    this.list.replaceChildren(...rows);
    this.box.hidden = devices.length === 0;
    return Boolean(here) && devices.some((d) => sameEndpoint(d.endpoint, here));
  }

  row(d, name, current) {
    const level = h('select', { 'aria-label': `Push to ${name}` },
      LEVELS.map(([value, label]) => h('option', { value, selected: d.level === value }, label)));
    const quietOn = h('input', { type: 'checkbox', 'aria-label': `Quiet hours on ${name}`, checked: Boolean(d.quiet) });
    const quiet = d.quiet || NIGHT;
    const from = h('input', { type: 'time', 'aria-label': `Quiet from on ${name}`, value: quiet.start, required: true });
    const until = h('input', { type: 'time', 'aria-label': `Quiet until on ${name}`, value: quiet.end, required: true });
    const times = h('div', { class: 'push-quiet-times', hidden: !d.quiet },
      h('label', { class: 'field-sm' }, h('span', { 'aria-hidden': 'true' }, 'From'), from),
      h('label', { class: 'field-sm' }, h('span', { 'aria-hidden': 'true' }, 'Until'), until));
    const stop = h('button', { type: 'button', class: 'btn btn-danger btn-sm' }, `Stop pushes to ${name}`);
    const controls = [level, quietOn, from, until, stop];
    const save = async (change, said) => {
      for (const c of controls) c.disabled = true;
      setText(this.error, '');
      try {
        const body = current ? { ...change, utc_offset: utcOffset() } : change;
        await api.updatePush(d.endpoint, body);
        setText(this.status, said);
      } catch (err) {
        if (err instanceof ApiError && err.isUnauthorized) {
          this.app.sessionEnded();
          return;
        }
        setText(this.error, err instanceof ApiError && err.code === 'unknown_subscription'
          ? `${name} no longer receives pushes.`
          : err instanceof ApiError ? err.message : `Could not change ${name}.`);
        await this.load();
        return;
      } finally {
        for (const c of controls) c.disabled = false;
      }
    };
    const saveQuiet = () => {
      if (!quietOn.checked) return save({ quiet: null }, `Quiet hours off on ${name}.`);
      if (!from.value || !until.value || from.value === until.value) {
        setText(this.error, 'Quiet hours need two different times, such as 22:00 and 07:00.');
        return null;
      }
      return save({ quiet: { start: from.value, end: until.value } },
        `Quiet hours on ${name}: nothing is pushed from ${from.value} until ${until.value} on its clock.`);
    };
    level.addEventListener('change', () => save({ level: level.value }, `${name} gets ${SAID[level.value]}.`));
    quietOn.addEventListener('change', () => {
      times.hidden = !quietOn.checked;
      saveQuiet();
    });
    from.addEventListener('change', saveQuiet);
    until.addEventListener('change', saveQuiet);
    stop.addEventListener('click', () => this.stop(d, name, current, stop));

    return h('li', { class: `push-device${current ? ' is-current' : ''}` },
      h('div', { class: 'device-main' },
        h('p', { class: 'device-name' }, name, current ? h('span', { class: 'device-tag' }, ' (this device)') : null),
        h('p', { class: 'device-meta' },
          h('span', null, 'Added ', when(d.created_at)),
          h('span', null, d.last_ok_at ? ['Last push ', when(d.last_ok_at)] : 'No push yet'))),
      h('label', { class: 'field-sm push-level' }, h('span', { 'aria-hidden': 'true' }, 'Push'), level),
      h('label', { class: 'choice' }, quietOn, h('span', null, h('strong', null, 'Quiet hours'))),
      times,
      h('div', { class: 'device-actions' }, stop));
  }

  async stop(d, name, current, btn) {
    btn.disabled = true;
    setText(this.error, '');
    try {
      // This browser's own subscription is taken back from its push service as well.
      if (current) await disablePush();
      else await api.unsubscribePush(d.endpoint);
    } catch (err) {
      btn.disabled = false;
      if (err instanceof ApiError && err.isUnauthorized) {
        this.app.sessionEnded();
        return;
      }
      setText(this.error, err instanceof ApiError ? err.message : `Could not stop pushes to ${name}.`);
      return;
    }
    if (current) $('#notify-push').checked = false;
    setText(this.status, `${name} no longer receives pushes.`);
    $('#notify-title').focus();
    await this.load();
  }
}
