// The "Webhooks" section of a room's details: the room's incoming hooks (name, who made it,
// when it last posted) and outgoing webhooks (address and delivery state), adding one (its
// secret URL or signing secret shown once) and removing one.

import { api, ApiError } from './api.js';
import { $, h, setText } from './dom.js';

/** How often the delivery state is refreshed while the dialog is open. */
const REFRESH_MS = 5000;

function ago(ts) {
  if (!ts) return 'never';
  const t = Date.parse(ts);
  if (Number.isNaN(t)) return 'never';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toLocaleDateString();
}

function errorText(err, fallback) {
  return err instanceof ApiError && err.message ? err.message : fallback;
}

export class HooksPanel {
  /** `app` gives `isMe(name)` and `isAdmin`; `roomOf()` the room the dialog is about. */
  constructor(app, roomOf) {
    this.app = app;
    this.roomOf = roomOf;
    this.timer = null;
    $('#hook-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.addHook();
    });
    $('#webhook-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.addWebhook();
    });
    $('#hook-secret-copy').addEventListener('click', async () => {
      const input = $('#hook-secret-value');
      try {
        await navigator.clipboard.writeText(input.value);
        setText($('#hooks-status'), 'Copied.');
      } catch {
        input.select();
        setText($('#hooks-status'), 'Select it and copy it yourself (Ctrl+C).');
      }
    });
  }

  /** The dialog opened for `room` (hidden for direct conversations). */
  open(room) {
    const section = $('#hooks-section');
    section.hidden = !room || room.kind === 'dm';
    $('#hook-secret').hidden = true;
    $('#hook-name').value = '';
    $('#webhook-url').value = '';
    setText($('#hooks-status'), '');
    if (section.hidden) return;
    $('#hook-list').replaceChildren();
    $('#webhook-list').replaceChildren();
    this.load();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.load(), REFRESH_MS);
  }

  close() {
    clearInterval(this.timer);
    this.timer = null;
  }

  mayRemove(item, room) {
    const app = this.app;
    return app.isAdmin || (item.created_by && app.isMe(item.created_by))
      || (room && room.created_by && app.isMe(room.created_by));
  }

  async load() {
    const room = this.roomOf();
    if (!room || room.kind === 'dm') return;
    try {
      const [hooks, webhooks] = await Promise.all([api.hooks(room.name), api.webhooks(room.name)]);
      if (this.roomOf() !== room) return;
      this.render(room, (hooks && hooks.hooks) || [], (webhooks && webhooks.webhooks) || []);
    } catch (err) {
      setText($('#hooks-status'), errorText(err, 'Could not load the webhooks.'));
    }
  }

  render(room, hooks, webhooks) {
    $('#hook-list').replaceChildren(...hooks.map((k) => h('li', { class: 'hook-item' },
      h('span', { class: 'hook-main' },
        h('strong', {}, String(k.name)),
        h('span', { class: 'hook-meta' }, `incoming · by ${k.created_by || 'a removed account'} · last post ${ago(k.last_used_ts)}`)),
      this.mayRemove(k, room) ? h('button', {
        type: 'button',
        class: 'link-btn',
        'aria-label': `Remove hook ${k.name}`,
        onclick: () => this.removeHook(room, k),
      }, 'Remove') : null)));
    $('#webhook-list').replaceChildren(...webhooks.map((w) => {
      let state = `${w.delivered} delivered`;
      if (w.pending) state += ` · ${w.pending} waiting`;
      const failing = w.failing_since && w.last_error;
      return h('li', { class: `hook-item${failing ? ' is-failing' : ''}` },
        h('span', { class: 'hook-main' },
          h('strong', { class: 'hook-url' }, String(w.url)),
          h('span', { class: 'hook-meta' }, `outgoing · by ${w.created_by || 'a removed account'} · ${state}`),
          failing ? h('span', { class: 'hook-error', role: 'note' }, `Failing since ${ago(w.failing_since)}: ${w.last_error}`) : null),
        this.mayRemove(w, room) ? h('button', {
          type: 'button',
          class: 'link-btn',
          'aria-label': `Remove webhook ${w.url}`,
          onclick: () => this.removeWebhook(room, w),
        }, 'Remove') : null);
    }));
  }

  showSecret(label, value) {
    setText($('#hook-secret-label'), label);
    $('#hook-secret-value').value = value;
    $('#hook-secret').hidden = false;
    $('#hook-secret-value').focus();
    $('#hook-secret-value').select();
  }

  async addHook() {
    const room = this.roomOf();
    const input = $('#hook-name');
    const name = input.value.trim();
    if (!room || !name) {
      setText($('#hooks-status'), 'Give the hook a name: it posts under it.');
      input.focus();
      return;
    }
    try {
      const data = await api.createHook(room.name, name);
      input.value = '';
      setText($('#hooks-status'), `Hook ${name} added.`);
      this.showSecret('Hook URL', data.hook.url);
      this.load();
    } catch (err) {
      setText($('#hooks-status'), errorText(err, 'Could not add the hook.'));
      input.focus();
    }
  }

  async addWebhook() {
    const room = this.roomOf();
    const input = $('#webhook-url');
    const url = input.value.trim();
    if (!room || !url) {
      setText($('#hooks-status'), 'Enter the address to send the messages to.');
      input.focus();
      return;
    }
    try {
      const data = await api.createWebhook(room.name, url);
      input.value = '';
      setText($('#hooks-status'), 'Webhook added. Check the signature of each delivery with this secret.');
      this.showSecret('Signing secret', data.webhook.secret);
      this.load();
    } catch (err) {
      setText($('#hooks-status'), errorText(err, 'Could not add the webhook.'));
      input.focus();
    }
  }

  async removeHook(room, k) {
    try {
      await api.deleteHook(room.name, k.id);
      setText($('#hooks-status'), `Hook ${k.name} removed.`);
      this.load();
    } catch (err) {
      setText($('#hooks-status'), errorText(err, 'Could not remove the hook.'));
    }
  }

  async removeWebhook(room, w) {
    try {
      await api.deleteWebhook(room.name, w.id);
      setText($('#hooks-status'), 'Webhook removed.');
      this.load();
    } catch (err) {
      setText($('#hooks-status'), errorText(err, 'Could not remove the webhook.'));
    }
  }
}
