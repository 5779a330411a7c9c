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
export function avatar(name, size = '') {
  return h('span', {
    class: `avatar hue-${hueIndex(name)}${size ? ` avatar-${size}` : ''}`,
    'aria-hidden': 'true',
  }, initial(name));
}

export function setAvatar(el, name) {
  el.className = el.className.replace(/\bhue-\d\b/g, '').trim() + ` hue-${hueIndex(name)}`;
  el.textContent = initial(name);
}

/** Number of Unicode code points (what the server counts). */
export const charCount = (s) => {
  let n = 0;
  for (const _ of s) n++; // eslint-disable-line no-unused-vars
  return n;
};

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?'"»”’)\]}]+$/;

/**
 * Turn a message body into DOM nodes: text nodes, plus <a> elements for
 * http(s) links. The text itself is never interpreted as markup.
 */
export function renderBody(text) {
  const nodes = [];
  let last = 0;
  URL_RE.lastIndex = 0;
  let match;
  while ((match = URL_RE.exec(text))) {
    let url = match[0];
    // Trim trailing punctuation, but keep a closing paren that has its opener.
    let trail = '';
    const t = url.match(TRAILING);
    if (t) {
      trail = t[0];
      url = url.slice(0, -trail.length);
      if (trail.startsWith(')') && url.includes('(') && !url.includes(')')) {
        url += ')';
        trail = trail.slice(1);
      }
    }
    let href = null;
    try {
      const parsed = new URL(url);
      if (parsed.protocol === 'http:' || parsed.protocol === 'https:') href = parsed.href;
    } catch { /* not a URL after all */ }
    if (!href || url.length < 10) continue;
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    nodes.push(h('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow ugc' }, url));
    last = match.index + url.length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
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
