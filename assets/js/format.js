// Formatting helpers: times, days, avatars, links.

import { h } from './dom.js';

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const dayYearFormat = new Intl.DateTimeFormat(undefined, {
  weekday: 'long', month: 'long', day: 'numeric', year: 'numeric',
});

export const formatTime = (date) => timeFormat.format(date);
export const formatFull = (date) => fullFormat.format(date);

/** A key that is equal for two dates on the same local calendar day. */
export function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

/** "Today", "Yesterday", "Monday, November 23" or with the year when it differs. */
export function dayLabel(date, now = new Date()) {
  if (dayKey(date) === dayKey(now)) return 'Today';
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (dayKey(date) === dayKey(yesterday)) return 'Yesterday';
  return date.getFullYear() === now.getFullYear() ? dayFormat.format(date) : dayYearFormat.format(date);
}

export function parseTs(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? new Date() : d;
}

/** Stable colour index (0–7) for a username. */
export function hueIndex(name) {
  let hash = 0;
  const s = String(name).toLowerCase();
  for (let i = 0; i < s.length; i++) hash = (hash * 31 + s.charCodeAt(i)) >>> 0;
  return hash % 8;
}

export function initial(name) {
  const first = Array.from(String(name || '?'))[0] || '?';
  return first.toUpperCase();
}

/** An avatar bubble with the user's initial; decorative (aria-hidden). */
// The initial is drawn by CSS (`content: attr(data-initial)`): it is decoration, so it
// stays out of the text (and the accessible names) of the buttons and rows it sits in.
export function avatar(name, size = '') {
  return h('span', {
    class: `avatar hue-${hueIndex(name)}${size ? ` avatar-${size}` : ''}`,
    'aria-hidden': 'true',
    dataset: { initial: initial(name) },
  });
}

export function setAvatar(el, name) {
  el.className = el.className.replace(/\bhue-\d\b/g, '').trim() + ` hue-${hueIndex(name)}`;
  el.textContent = '';
  el.dataset.initial = initial(name);
}

/** Number of Unicode code points (what the server counts). */
export const charCount = (s) => {
  let n = 0;
  for (const _ of s) n++; // eslint-disable-line no-unused-vars
  return n;
};

const NAME_CHAR = /[A-Za-z0-9_.\-]/;

/**
 * Where `text` mentions `name` (`@name`, any case, as the server counts it):
 * `@` starts the text or follows a character that cannot be part of a username,
 * and the name is not followed by another username character.
 * Returns [start, end] pairs.
 */
export function findMentions(text, name) {
  const out = [];
  if (!name) return out;
  const lower = text.toLowerCase();
  const needle = `@${String(name).toLowerCase()}`;
  let from = 0;
  for (;;) {
    const i = lower.indexOf(needle, from);
    if (i < 0) break;
    const end = i + needle.length;
    const before = i > 0 ? text[i - 1] : '';
    const after = end < text.length ? text[end] : '';
    // A trailing '.' or '-' is punctuation ("thanks @bob.") unless a name character follows it.
    const afterOk = !after || !NAME_CHAR.test(after)
      || ((after === '.' || after === '-') && !(end + 1 < text.length && NAME_CHAR.test(text[end + 1])));
    if ((!before || !NAME_CHAR.test(before)) && afterOk) out.push([i, end]);
    from = end;
  }
  return out;
}

/**
 * Does `text` mention `name`? `@here` counts as a mention of everyone reading it (the server
 * mentions the room's members who are online when it is sent).
 */
export const mentions = (text, name) => findMentions(String(text || ''), name).length > 0
  || findMentions(String(text || ''), 'here').length > 0;

/**
 * A search snippet as DOM nodes: the server wraps each matched word in
 * U+0002 ... U+0003; those become <mark> elements, everything else is text.
 */
export function renderSnippet(snippet) {
  const nodes = [];
  let buf = '';
  let inMark = false;
  const flush = () => {
    if (!buf) return;
    nodes.push(inMark ? h('mark', null, buf) : document.createTextNode(buf));
    buf = '';
  };
  for (const ch of String(snippet || '')) {
    if (ch === '\u0002') { flush(); inMark = true; } else if (ch === '\u0003') { flush(); inMark = false; } else buf += ch;
  }
  flush();
  return nodes;
}

/** "alice", "alice and bob", "alice, bob and carol" */
export function listNames(names) {
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/** A random nonce; crypto.randomUUID only exists in secure contexts. */
export function makeNonce() {
  if (window.crypto && typeof window.crypto.randomUUID === 'function') {
    try { return window.crypto.randomUUID(); } catch { /* fall through */ }
  }
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
