// Files: the tray of uploads waiting to be sent (each with its progress bar and a cancel
// button), how a message shows its attachments (image previews and file cards), and the
// lightbox that opens an image.

import { h, setText } from './dom.js';

/** Most files one message may carry (the server's limit). */
export const MAX_FILES = 10;

/** Path of an upload's bytes, relative to the page (so it works under a path prefix). */
export const fileUrl = (id) => `api/uploads/${encodeURIComponent(id)}`;
const thumbUrl = (id) => `${fileUrl(id)}/thumbnail`;

/**
 * The card of a link preview: the site's picture (served by Hearth), the site's name, the
 * page's title as a link and its description. `onRemove`, when given (the author's own
 * message), adds a "Remove preview" button. Returns null for anything that is not an
 * http(s) link.
 */
export function linkPreviewView(p, onRemove) {
  if (!p || typeof p.url !== 'string' || !/^https?:\/\//i.test(p.url)) return null;
  const title = String(p.title || p.url);
  const text = h('div', { class: 'preview-text' });
  if (p.site_name) text.append(h('span', { class: 'preview-site' }, String(p.site_name)));
  text.append(h('a', { class: 'preview-title', href: p.url, target: '_blank', rel: 'noopener noreferrer', dir: 'auto' }, title));
  if (p.description) text.append(h('p', { class: 'preview-description', dir: 'auto' }, String(p.description)));
  const card = h('div', { class: 'link-preview' });
  // Only a picture Hearth serves: a relative path under api/, never the linked site.
  if (typeof p.image_url === 'string' && /^\/api\/messages\/\d+\/preview\/image$/.test(p.image_url)) {
    card.append(h('img', { class: 'preview-image', src: p.image_url.slice(1), alt: '', loading: 'lazy', decoding: 'async' }));
  }
  card.append(text);
  if (onRemove) {
    const remove = h('button', { type: 'button', class: 'preview-remove icon-button', 'aria-label': 'Remove preview', title: 'Remove preview' }, '×');
    remove.addEventListener('click', (e) => {
      e.stopPropagation();
      onRemove();
    });
    card.append(remove);
  }
  return card;
}

/** "2.4 MB", "830 KB", "12 bytes". */
export function formatSize(n) {
  const size = Number(n) || 0;
  if (size < 1000) return `${size} byte${size === 1 ? '' : 's'}`;
  const units = ['KB', 'MB', 'GB'];
  let v = size / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** What common media types are called. */
const KINDS = {
  'text/plain': 'Text',
  'text/markdown': 'Markdown text',
  'text/csv': 'CSV table',
  'text/html': 'HTML page',
  'application/pdf': 'PDF',
  'application/json': 'JSON',
  'application/zip': 'ZIP archive',
  'application/gzip': 'GZIP archive',
  'application/octet-stream': 'File',
  'application/msword': 'Word document',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'Word document',
  'application/vnd.ms-excel': 'Excel spreadsheet',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'Excel spreadsheet',
  'application/vnd.ms-powerpoint': 'PowerPoint presentation',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'PowerPoint presentation',
  'application/vnd.oasis.opendocument.text': 'OpenDocument text',
  'application/vnd.oasis.opendocument.spreadsheet': 'OpenDocument spreadsheet',
};

/** A short, readable name for a media type: "PDF", "PNG image", "SVG image", "Text". */
export function kindOf(type) {
  const t = String(type || '').toLowerCase().split(';')[0].trim();
  if (KINDS[t]) return KINDS[t];
  const [top, rawSub = ''] = t.split('/');
  // "svg+xml" is SVG, "x-tar" is TAR, "vnd.foo.bar" is BAR.
  const sub = rawSub.replace(/\+.*$/, '').replace(/^x-/, '').split('.').pop().toUpperCase();
  if (!sub) return 'File';
  switch (top) {
    case 'image': return `${sub} image`;
    case 'audio': return `${sub} audio`;
    case 'video': return `${sub} video`;
    case 'text': return `${sub} text`;
    default: return sub;
  }
}

const isImage = (a) => Number(a.width) > 0 && Number(a.height) > 0;

/** The largest side of an image preview, and the smallest (a usable tap target). */
const PREVIEW_MAX = 320;
const PREVIEW_MIN = 48;

/**
 * The box an image of `w`×`h` is shown in: scaled down to fit PREVIEW_MAX, and no side under
 * PREVIEW_MIN (a sliver of 60×3000 or a 1×1 dot is still something to tap); the image is
 * fitted inside it whole (files.css: object-fit: contain).
 */
export function previewBox(w, h) {
  const scale = Math.min(1, PREVIEW_MAX / Math.max(w, h));
  const side = (n) => Math.min(PREVIEW_MAX, Math.max(PREVIEW_MIN, Math.round(n * scale)));
  const box = [side(w), side(h)];
  // Clamped: the box is not the picture's shape (it must keep its own, files.css).
  const clamped = box[0] !== Math.round(w * scale) || box[1] !== Math.round(h * scale);
  return [box[0], box[1], clamped];
}

/**
 * The attachments of a message: images as previews (a button that opens the lightbox), other
 * files as cards with name, size and type that download the file.
 * @param {Array<object>} list upload objects
 * @param {(a: object) => void} onOpen
 */
export function attachmentsView(list, onOpen) {
  const images = list.filter(isImage);
  const others = list.filter((a) => !isImage(a));
  const parts = [];
  if (images.length) {
    parts.push(h('div', { class: `msg-images${images.length > 1 ? ' is-grid' : ''}` },
      ...images.map((a) => {
        const [width, height, clamped] = previewBox(Number(a.width), Number(a.height));
        return h('button', {
          type: 'button',
          class: 'msg-image',
          'aria-label': `Open image ${a.name}`,
          title: a.name,
          onclick: () => onOpen(a),
        }, h('img', {
          class: clamped ? 'is-clamped' : null,
          src: thumbUrl(a.id),
          alt: a.name,
          width,
          height,
          loading: 'lazy',
          decoding: 'async',
        }));
      })));
  }
  for (const a of others) {
    parts.push(h('a', {
      class: 'file-card',
      href: fileUrl(a.id),
      download: a.name,
      'aria-label': `Download ${a.name}, ${formatSize(a.size)}`,
    },
    h('span', { class: 'file-icon', 'aria-hidden': 'true' }, fileGlyph()),
    h('span', { class: 'file-text' },
      h('span', { class: 'file-name', dir: 'auto' }, a.name),
      h('span', { class: 'file-meta' }, `${formatSize(a.size)} · ${kindOf(a.type)}`))));
  }
  return h('div', { class: 'msg-files' }, ...parts);
}

function fileGlyph() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', 'M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8l-6-6Zm0 2.5L17.5 8H14V4.5ZM6 20V4h6v6h6v10H6Z');
  svg.append(p);
  return svg;
}

/** The lightbox: one image at full size; Esc, the close button or a click outside close it. */
export class Lightbox {
  /** @param {HTMLDialogElement} dialog */
  constructor(dialog) {
    this.dialog = dialog;
    this.img = dialog.querySelector('img');
    this.caption = dialog.querySelector('.lightbox-name');
    this.download = dialog.querySelector('.lightbox-download');
    dialog.querySelector('.lightbox-close').addEventListener('click', () => dialog.close());
    dialog.addEventListener('click', (e) => {
      if (e.target === dialog) dialog.close();
    });
    dialog.addEventListener('close', () => {
      this.img.removeAttribute('src');
      if (this.opener && this.opener.isConnected) this.opener.focus();
    });
  }

  /** Show upload `a` (an image). */
  open(a) {
    this.opener = document.activeElement;
    this.img.src = fileUrl(a.id);
    this.img.alt = a.name;
    this.img.width = a.width;
    this.img.height = a.height;
    setText(this.caption, a.name);
    this.download.href = fileUrl(a.id);
    this.download.setAttribute('download', a.name);
    this.dialog.setAttribute('aria-label', `Image ${a.name}`);
    this.dialog.showModal();
  }
}

/**
 * Files chosen for the next message: each uploads at once, with a progress bar and a button
 * that cancels it (or removes it once uploaded, which deletes it on the server). Each room
 * keeps its own (as it keeps its draft): files attached in one conversation never go to
 * another.
 */
export class UploadTray {
  /**
   * @param {object} o
   * @param {HTMLElement} o.list   the tray (a list)
   * @param {(text: string) => void} o.onError
   * @param {() => void} o.onChange  files were added, finished or removed
   */
  constructor(o) {
    this.o = o;
    /** @type {Map<string, Array<{file: File, room: string, el: HTMLElement, xhr: XMLHttpRequest|null, upload: object|null, failed: boolean}>>} */
    this.trays = new Map();
    this.room = null;
  }

  /** The files of the room shown. */
  get items() { return this.trays.get(this.room) || []; }

  /** Show the files attached in `room`. */
  show(room) {
    this.room = room;
    this.render();
  }

  /** Room `from` is called `to` now: its files go with it. */
  rename(from, to) {
    const items = this.trays.get(from);
    if (items) {
      this.trays.delete(from);
      for (const i of items) i.room = to;
      this.trays.set(to, items);
    }
    if (this.room === from) this.room = to;
    this.render();
  }

  /** Signed out: every upload in flight stops, and nothing is left for the next person. */
  reset() {
    for (const items of this.trays.values()) for (const i of items) if (i.xhr) i.xhr.abort();
    this.trays.clear();
    this.room = null;
    this.render();
  }

  /** Forget `item`, of whichever room. */
  drop(item) {
    const left = (this.trays.get(item.room) || []).filter((i) => i !== item);
    if (left.length) this.trays.set(item.room, left);
    else this.trays.delete(item.room);
  }

  /** Start uploading `files` (a FileList or an array of File). */
  add(files) {
    const list = Array.from(files || []);
    const space = MAX_FILES - this.items.length;
    if (list.length > space) this.o.onError(`A message may carry at most ${MAX_FILES} files.`);
    for (const file of list.slice(0, Math.max(0, space))) this.start(file);
    this.render();
  }

  start(file) {
    const progress = h('progress', { class: 'upload-progress', max: String(Math.max(1, file.size)), value: '0', 'aria-label': `Uploading ${file.name}` });
    const status = h('span', { class: 'upload-status' }, 'Uploading…');
    const item = { file, room: this.room, xhr: null, upload: null, failed: false, progress, status };
    const cancel = h('button', {
      type: 'button',
      class: 'icon-btn icon-btn-sm upload-cancel',
      'aria-label': `Cancel upload of ${file.name}`,
      title: 'Cancel',
      onclick: () => this.remove(item),
    }, '×');
    item.cancel = cancel;
    item.el = h('li', { class: 'upload-item' },
      h('span', { class: 'upload-name', title: file.name }, file.name),
      h('span', { class: 'upload-size' }, formatSize(file.size)),
      progress, status, cancel);
    this.trays.set(this.room, [...this.items, item]);

    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    xhr.open('POST', `api/uploads?name=${encodeURIComponent(file.name)}`);
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) progress.value = e.loaded;
    });
    xhr.addEventListener('load', () => {
      item.xhr = null;
      const body = xhr.response || {};
      if (xhr.status === 201 && body.upload) {
        item.upload = body.upload;
        progress.value = progress.max;
        setText(status, 'Ready');
        item.el.classList.add('is-done');
        cancel.setAttribute('aria-label', `Remove ${file.name}`);
        cancel.title = 'Remove';
      } else {
        const message = (body.error && body.error.message) || `The upload failed (HTTP ${xhr.status}).`;
        this.fail(item, message);
      }
      this.o.onChange();
    });
    xhr.addEventListener('error', () => {
      item.xhr = null;
      this.fail(item, 'The upload failed: the server could not be reached.');
      this.o.onChange();
    });
    xhr.send(file);
  }

  fail(item, message) {
    item.failed = true;
    item.el.classList.add('is-failed');
    setText(item.status, 'Failed');
    item.cancel.setAttribute('aria-label', `Remove ${item.file.name}`);
    // (Attached in a room not shown: its tray says so when it is opened again.)
    if (item.room === this.room) this.o.onError(`${item.file.name}: ${message}`);
  }

  /** Cancel an upload in flight, or forget (and delete) a finished one. */
  remove(item) {
    if (item.xhr) item.xhr.abort();
    if (item.upload) {
      fetch(fileUrl(item.upload.id), { method: 'DELETE', credentials: 'same-origin' }).catch(() => {});
    }
    this.drop(item);
    this.render();
    this.o.onChange();
  }

  /** Whether a file is still uploading. */
  get busy() { return this.items.some((i) => i.xhr); }

  /** The finished uploads, in the order they were chosen. */
  ready() { return this.items.filter((i) => i.upload).map((i) => i.upload); }

  /** The names of the files whose upload failed. */
  failedNames() { return this.items.filter((i) => i.failed).map((i) => i.file.name); }

  /** Whether anything waits in the tray. */
  get isEmpty() { return this.items.length === 0; }

  /** Empty the tray once its files were sent (they are the message's now). */
  clear() {
    this.trays.delete(this.room);
    this.render();
  }

  render() {
    this.o.list.replaceChildren(...this.items.map((i) => i.el));
    this.o.list.hidden = this.items.length === 0;
  }
}
