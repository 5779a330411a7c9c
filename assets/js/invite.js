// The "Invite people" dialog. It asks the server what to offer (`GET /api/share`: the site's
// address, the registration mode, whether the reader may create invite links), then:
// - registration open: the plain address is the link to share, with its QR code;
// - invite only: a form (Uses, Expires after) that creates an invite link, shown with
//   "Copy link" and its QR code;
// - closed: why nobody can join, and (for administrators) where to change that.
// The QR code is drawn here from the matrix the server sent (qr.js); nothing goes elsewhere.

import { api, ApiError } from './api.js';
import { h, setText } from './dom.js';
import { openDialog, wireDialog } from './dialogs.js';
import { qrSvg } from './qr.js';

const QR_LABEL = 'QR code for the invite link';

/** Copy `input`'s text; resolves to whether it worked (the text is left selected if not). */
export async function copyText(input) {
  try {
    if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard');
    await navigator.clipboard.writeText(input.value);
    return true;
  } catch {
    input.focus();
    input.select();
    try { return document.execCommand('copy'); } catch { return false; }
  }
}

function field(id, label, control, hint) {
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('p', { id: `${id}-hint`, class: 'field-hint' }, hint) : null);
}

export class InviteDialog {
  /** @param {{isAdmin: () => boolean}} o */
  constructor(o) {
    this.o = o;
    this.seq = 0;
    this.build();
    wireDialog(this.dialog);
  }

  build() {
    this.title = h('h2', { id: 'invite-people-title', class: 'dialog-title', tabindex: '-1' }, 'Invite people');
    this.sub = h('p', { id: 'invite-people-sub', class: 'dialog-sub' });
    this.status = h('p', { class: 'field-hint invite-status', role: 'status' });
    this.error = h('p', { class: 'form-error', role: 'alert' });
    this.uses = h('input', {
      id: 'invite-people-uses', type: 'number', inputmode: 'numeric', min: '1', max: '1000', step: '1',
      value: '10', required: true, 'aria-describedby': 'invite-people-uses-hint',
    });
    this.expiry = h('select', { id: 'invite-people-expiry' },
      h('option', { value: '24' }, '1 day'),
      h('option', { value: '168', selected: true }, '7 days'),
      h('option', { value: '720' }, '30 days'));
    this.createBtn = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create invite link');
    this.form = h('form', { class: 'invite-options', novalidate: true },
      h('div', { class: 'invite-fields' },
        field('invite-people-uses', 'Uses', this.uses, 'How many people can join with it, 1 to 1000.'),
        field('invite-people-expiry', 'Expires after', this.expiry)),
      this.createBtn);
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.create();
    });

    this.url = h('input', { id: 'invite-people-url', class: 'invite-url', type: 'text', readonly: true, autocomplete: 'off', spellcheck: 'false' });
    this.copyBtn = h('button', { type: 'button', class: 'btn btn-primary' }, 'Copy link');
    this.copied = h('p', { class: 'invite-copied', role: 'status' });
    this.copyBtn.addEventListener('click', () => this.copy());
    this.url.addEventListener('focus', () => this.url.select());
    this.qr = h('div', { class: 'invite-qr' });
    this.linkNote = h('p', { class: 'field-hint' });
    this.again = h('button', { type: 'button', class: 'btn btn-secondary', hidden: true }, 'Create another link');
    this.again.addEventListener('click', () => {
      this.result.hidden = true;
      this.again.hidden = true;
      this.form.hidden = false;
      setText(this.status, '');
      this.uses.focus();
    });
    this.result = h('div', { class: 'invite-result', hidden: true },
      h('div', { class: 'field' },
        h('label', { for: 'invite-people-url' }, 'Invite link'),
        h('div', { class: 'invite-copy-row' }, this.url, this.copyBtn)),
      this.copied,
      this.qr,
      this.linkNote,
      this.again);

    this.dialog = h('dialog', {
      id: 'invite-people-dialog', class: 'dialog invite-dialog',
      'aria-labelledby': 'invite-people-title', 'aria-describedby': 'invite-people-sub',
    }, h('div', { class: 'dialog-body' },
      this.title, this.sub, this.status, this.error, this.form, this.result,
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn btn-ghost', 'data-close': true }, 'Close'))));
    (document.getElementById('chat-view') || document.body).append(this.dialog);
  }

  get isOpen() { return this.dialog.open; }

  close() { if (this.dialog.open) this.dialog.close(); }

  /** Open the dialog and find out what to offer. */
  async open() {
    const seq = ++this.seq;
    this.form.hidden = true;
    this.result.hidden = true;
    this.again.hidden = true;
    this.sub.replaceChildren('Finding out who can join this server…');
    setText(this.status, '');
    setText(this.error, '');
    setText(this.copied, '');
    openDialog(this.dialog, this.title);
    try {
      const share = await api.share();
      if (seq === this.seq) this.offer(share);
    } catch (err) {
      if (seq !== this.seq) return;
      this.sub.replaceChildren('Invite people to this server.');
      setText(this.error, err instanceof ApiError ? err.message : 'Something went wrong. Please try again.');
    }
  }

  /** What the server's answer lets the reader do. */
  offer(share) {
    const strong = (t) => h('strong', null, t);
    if (share.registration === 'open') {
      this.sub.replaceChildren(strong('Registration is open on this server.'),
        ' Anyone with its address can create an account, so the plain address works as an invite: share it.');
      this.showLink(share.url, share.qr, this.o.isAdmin()
        ? 'This is the site’s address. To require invite links instead, choose “Invite only” on the administration page.'
        : 'This is the site’s address.');
    } else if (share.registration === 'closed') {
      const parts = [strong('Registration is closed on this server.'), ' Nobody can create an account, not even with an invite link.'];
      if (this.o.isAdmin()) {
        parts.push(' To let people in, choose “Open” or “Invite only” on the ',
          h('a', { href: 'admin.html#registration-section' }, 'administration page'), '.');
      } else {
        parts.push(' Ask an administrator to open it.');
      }
      this.sub.replaceChildren(...parts);
    } else if (share.can_invite) {
      this.sub.replaceChildren(strong('New accounts need an invite link.'),
        ' Create one, then share it or let people scan its QR code.');
      this.form.hidden = false;
      this.uses.focus();
    } else {
      this.sub.replaceChildren(strong('New accounts need an invite link,'), ' and only administrators can create them here. Ask one for a link.');
    }
  }

  showLink(url, qr, note) {
    this.url.value = url;
    setText(this.copied, '');
    setText(this.linkNote, note);
    const svg = qrSvg(qr, QR_LABEL);
    this.qr.replaceChildren(...(svg ? [svg] : []));
    this.qr.hidden = !svg;
    this.result.hidden = false;
  }

  async create() {
    const uses = Number(this.uses.value);
    if (!Number.isInteger(uses) || uses < 1 || uses > 1000) {
      this.uses.setAttribute('aria-invalid', 'true');
      setText(this.error, 'Uses must be a whole number from 1 to 1000.');
      this.uses.focus();
      return;
    }
    this.uses.removeAttribute('aria-invalid');
    setText(this.error, '');
    this.createBtn.disabled = true;
    this.createBtn.classList.add('is-loading');
    try {
      const { invite } = await api.createInvite(uses, Number(this.expiry.value));
      const until = new Date(invite.expires_at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
      this.showLink(invite.url, invite.qr,
        `It can create ${invite.max_uses} account${invite.max_uses === 1 ? '' : 's'} and works until ${until}. Copy it now: it is shown only this once.`);
      setText(this.status, 'Invite link created.');
      this.form.hidden = true;
      this.again.hidden = false;
      this.copyBtn.focus();
    } catch (err) {
      let text = err instanceof ApiError ? err.message : 'Something went wrong. Please try again.';
      if (err instanceof ApiError && err.status === 429 && err.retryAfter) {
        text += ` Try again in ${Math.ceil(err.retryAfter / 60)} minute${Math.ceil(err.retryAfter / 60) === 1 ? '' : 's'}.`;
      }
      setText(this.error, text);
    } finally {
      this.createBtn.disabled = false;
      this.createBtn.classList.remove('is-loading');
    }
  }

  async copy() {
    const ok = await copyText(this.url);
    setText(this.copied, ok ? 'Copied' : 'Selected: press Ctrl+C (or ⌘C) to copy the link.');
    if (ok) this.copyBtn.focus();
  }
}
