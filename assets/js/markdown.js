// Message bodies as a small, safe subset of Markdown, built as DOM nodes.
//
// Blocks: paragraphs (a single newline stays a line break), fenced code blocks (``` with an
// optional language; an unclosed fence runs to the end of the message), block quotes (`>`),
// bulleted (`-`, `*`) and numbered (`1.`, `1)`) lists, nested a few levels deep.
// Inline: **bold**, __bold__, *italic*, _italic_, ~~strike~~, `code`, backslash escapes,
// [text](url) links to http:, https: and mailto: URLs, bare http(s) URLs and `www.` addresses
// (linked as https), mentions of the reader (`@me`, and `@here`) and room references (`#room`).
// A link to a message of this very page (a permalink, `PAGE#room/ID`) opens in the page.
//
// Nothing is ever parsed as HTML: every character of the text ends up in a text node, and the
// only attributes set are fixed ones and URLs that passed the protocol check. Anything that
// does not match renders as the characters that were typed. Both passes are linear in the
// length of the text (bounded look-ahead, no backtracking regular expressions, no rescans),
// so a hostile 4000-character message costs no more than an ordinary one.

import { h } from './dom.js';
import { findMentions } from './format.js';
import { localPermalink } from './permalink.js';

/** How deep quotes and lists nest; deeper markers are shown as text. */
const MAX_BLOCK_DEPTH = 6;
/** How deep emphasis nests as elements; deeper levels keep their text, unstyled. */
const MAX_INLINE_DEPTH = 16;
/** The longest `[text](url)` destination looked for, in UTF-16 units. */
const MAX_DESTINATION = 2048;
/** Longest room name (src/domain.rs, MAX_ROOM_NAME). */
const MAX_ROOM_NAME = 48;

const LINK_REL = 'noopener noreferrer';
const LINK_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

const ESCAPABLE = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';
/** A run of characters with no inline meaning: the scanner copies it in one step. */
const PLAIN = /[^\\`*_~[\]hHwW@#]+/y;
const SPACE = /\s/;
const PUNCT = /[\p{P}\p{S}]/u;
const WORD = /[A-Za-z0-9_]/;
const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;
const ROOM_CHAR = /[A-Za-z0-9_-]/;
const ALNUM = /[A-Za-z0-9]/;
/** Characters after which `#room` is a reference (besides whitespace and the start). */
const ROOM_LEAD = '(*_~';
/** Characters that end a bare URL. */
const URL_STOP = '<>"\'`';
/** Trailing characters taken off a bare URL: punctuation, and emphasis markers around it. */
const URL_TRAILING = '.,;:!?\'"»”’)]}*_~';
const LANG = /^[A-Za-z0-9_+#.-]{1,32}$/;

/**
 * Render a message body as DOM nodes (an array of block elements).
 *
 * `me` is the reader's username: their mentions are highlighted.
 * Options: `roomLinks` (default true) turns `#room` into links to `#room` (the chat page
 * opens the room on `hashchange`); `copyButtons` (default true) adds a "Copy code" button
 * to each fenced code block.
 */
export function renderMarkdown(text, me = '', opts = {}) {
  const ctx = {
    me: me || '',
    roomLinks: opts.roomLinks !== false,
    copyButtons: opts.copyButtons !== false,
  };
  const lines = String(text == null ? '' : text).split(/\r\n|\r|\n/);
  return blocks(lines, 0, ctx);
}

// ---- blocks -------------------------------------------------------------------------------

function indentOf(line) {
  let i = 0;
  while (i < line.length && line[i] === ' ') i++;
  return i;
}

const isBlank = (line) => /^[ \t]*$/.test(line);

/** An opening code fence: up to 3 spaces, 3 or more backticks, an optional info string. */
function fenceOpen(line) {
  const indent = indentOf(line);
  if (indent > 3 || line[indent] !== '`') return null;
  let j = indent;
  while (line[j] === '`') j++;
  const len = j - indent;
  if (len < 3) return null;
  const info = line.slice(j).trim();
  // A backtick in the info string makes it inline code instead (```like this```).
  if (info.includes('`')) return null;
  const word = /^\S*/.exec(info)[0];
  return { indent, len, lang: LANG.test(word) ? word : '' };
}

function isFenceClose(line, len) {
  const indent = indentOf(line);
  if (indent > 3) return false;
  let j = indent;
  while (line[j] === '`') j++;
  return j - indent >= len && isBlank(line.slice(j));
}

/** The rest of a block quote line after its `>` (and one optional space), or null. */
function quoteRest(line) {
  const indent = indentOf(line);
  if (indent > 3 || line[indent] !== '>') return null;
  const from = indent + 1;
  return line.slice(line[from] === ' ' ? from + 1 : from);
}

/**
 * A list item's marker: `-`, `*`, or 1–9 digits and `.` or `)`, then at least one space and
 * some content (an empty item stays text). `width` is where the item's content starts.
 */
function listMarker(line) {
  const indent = indentOf(line);
  if (indent > 3) return null;
  let i = indent;
  let ordered = false;
  let start = 1;
  if (line[i] === '-' || line[i] === '*') {
    i++;
  } else {
    let j = i;
    while (j < line.length && j - i < 9 && line[j] >= '0' && line[j] <= '9') j++;
    if (j === i || (line[j] !== '.' && line[j] !== ')')) return null;
    ordered = true;
    start = Number(line.slice(i, j));
    i = j + 1;
  }
  let k = i;
  while (k < line.length && line[k] === ' ') k++;
  if (k === i || k === line.length) return null;
  const width = k - i > 4 ? i + 1 : k;
  return { indent, ordered, start, width, content: line.slice(width) };
}

/** Can `line` start a new block in the middle of a paragraph? */
function interrupts(line, depth) {
  if (fenceOpen(line)) return true;
  if (depth >= MAX_BLOCK_DEPTH) return false;
  if (quoteRest(line) !== null) return true;
  const item = listMarker(line);
  return Boolean(item) && (!item.ordered || item.start === 1);
}

function blocks(lines, depth, ctx) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      i++;
      continue;
    }
    const fence = fenceOpen(line);
    if (fence) {
      i = codeBlock(lines, i, fence, out, ctx);
    } else if (depth < MAX_BLOCK_DEPTH && quoteRest(line) !== null) {
      i = blockQuote(lines, i, depth, out, ctx);
    } else if (depth < MAX_BLOCK_DEPTH && listMarker(line)) {
      i = list(lines, i, depth, out, ctx);
    } else {
      i = paragraph(lines, i, depth, out, ctx);
    }
  }
  return out;
}

function paragraph(lines, i, depth, out, ctx) {
  const start = i;
  i++;
  while (i < lines.length && !isBlank(lines[i]) && !interrupts(lines[i], depth)) i++;
  // The lines keep their leading spaces: .msg-body keeps white space as typed.
  out.push(autoDir(h('p', null, inline(lines.slice(start, i).join('\n'), ctx))));
  return i;
}

function codeBlock(lines, i, fence, out, ctx) {
  const body = [];
  i++;
  while (i < lines.length && !isFenceClose(lines[i], fence.len)) {
    const line = lines[i];
    body.push(line.slice(Math.min(fence.indent, indentOf(line))));
    i++;
  }
  if (i < lines.length) i++; // the closing fence
  out.push(codeBlockNode(body.join('\n'), fence.lang, ctx));
  return i;
}

/** Consecutive `>` lines; their content is parsed again as blocks, one level deeper. */
function blockQuote(lines, i, depth, out, ctx) {
  const inner = [];
  for (; i < lines.length; i++) {
    const rest = quoteRest(lines[i]);
    if (rest === null) break;
    inner.push(rest);
  }
  out.push(h('blockquote', null, blocks(inner, depth + 1, ctx)));
  return i;
}

/**
 * A list: items of one kind (bulleted or numbered). An item's content is its first line and
 * the lines indented under it, parsed again as blocks; blank lines may separate items. A line
 * that is neither ends the list (chat text after a list is not folded into its last item).
 */
function list(lines, i, depth, out, ctx) {
  const first = listMarker(lines[i]);
  const items = [];
  let marker = first;
  while (marker) {
    const body = [marker.content];
    // Nested content may be indented as far as the item's text or, more loosely, by two.
    const need = Math.min(marker.width, marker.indent + 2);
    let next = lines.length;
    i++;
    while (i < lines.length) {
      const line = lines[i];
      if (isBlank(line)) {
        let j = i + 1;
        while (j < lines.length && isBlank(lines[j])) j++;
        if (j < lines.length && indentOf(lines[j]) >= need) {
          for (; i < j; i++) body.push('');
          continue;
        }
        next = j;
        break;
      }
      const indent = indentOf(line);
      if (indent < need) {
        next = i;
        break;
      }
      body.push(line.slice(Math.min(indent, marker.width)));
      i++;
    }
    items.push(autoDir(h('li', null, blocks(body, depth + 1, ctx))));
    i = next;
    marker = null;
    if (next < lines.length) {
      const m = listMarker(lines[next]);
      if (m && m.ordered === first.ordered) marker = m;
    }
  }
  const props = first.ordered && first.start !== 1 ? { start: first.start } : null;
  out.push(h(first.ordered ? 'ol' : 'ul', props, items));
  return i;
}

/**
 * Let `el` take the direction of its own text (`dir="auto"`): right to left for Hebrew or
 * Arabic, whatever the message's other paragraphs are. Set once its content is in place: the
 * browser looks for the first letter with a direction again after every child added to an
 * element that has it, which would make building a long paragraph quadratic.
 */
export function autoDir(el) {
  el.dir = 'auto';
  return el;
}

function codeBlockNode(text, lang, ctx) {
  const code = h('code', lang ? { class: `language-${lang}` } : null, text);
  const bar = ctx.copyButtons || lang
    ? h('div', { class: 'md-code-bar' },
      lang ? h('span', { class: 'md-code-lang' }, lang) : null,
      ctx.copyButtons ? copyButton(code) : null)
    : null;
  // Code reads left to right, in a message of any direction.
  return h('div', { class: 'md-code', dir: 'ltr' }, bar, h('pre', { class: 'md-pre' }, code));
}

/** "Copy code": the clipboard when the page may use it, else select the code for the reader. */
function copyButton(code) {
  const label = 'Copy code';
  const btn = h('button', { type: 'button', class: 'md-copy' }, label);
  let timer = 0;
  const show = (text) => {
    btn.textContent = text;
    clearTimeout(timer);
    timer = setTimeout(() => { btn.textContent = label; }, 2000);
  };
  btn.addEventListener('click', async () => {
    const text = code.textContent;
    if (navigator.clipboard && typeof navigator.clipboard.writeText === 'function') {
      try {
        await navigator.clipboard.writeText(text);
        show('Copied');
        return;
      } catch { /* not allowed here: select the text instead */ }
    }
    const selection = window.getSelection();
    if (!selection) return;
    const range = document.createRange();
    range.selectNodeContents(code);
    selection.removeAllRanges();
    selection.addRange(range);
    let copied = false;
    try {
      copied = document.execCommand('copy');
    } catch { /* the selection stays for the reader to copy */ }
    show(copied ? 'Copied' : 'Selected');
  });
  return btn;
}

// ---- inline -------------------------------------------------------------------------------
//
// One left-to-right scan turns the text into a doubly linked list of tokens: text, code,
// links, mentions, room references, and delimiter runs (`*`, `_`, `~~`) that are recorded on
// a delimiter stack. Emphasis is then resolved as in CommonMark ("process emphasis", with the
// per-kind lower bounds that keep it linear): a matched pair wraps the tokens between them in
// an element token. Brackets are matched when `]` is seen, as in CommonMark too.

function charBefore(s, i) {
  if (i <= 0) return '\n';
  const c = s.charCodeAt(i - 1);
  if (c >= 0xdc00 && c <= 0xdfff && i >= 2) return s.slice(i - 2, i);
  return s[i - 1];
}

function charAfter(s, i) {
  if (i >= s.length) return '\n';
  return String.fromCodePoint(s.codePointAt(i));
}

/** Where each closing backtick run can be found: runs by length, searched forwards only. */
function backtickRuns(src) {
  const runs = new Map();
  for (let i = src.indexOf('`'); i >= 0; i = src.indexOf('`', i)) {
    let j = i;
    while (src[j] === '`') j++;
    const len = j - i;
    if (!runs.has(len)) runs.set(len, { at: [], next: 0 });
    runs.get(len).at.push(i);
    i = j;
  }
  // The first run of exactly `len` backticks starting at or after `from` (which never
  // decreases from one call to the next), or -1.
  return (len, from) => {
    const r = runs.get(len);
    if (!r) return -1;
    while (r.next < r.at.length && r.at[r.next] < from) r.next++;
    return r.next < r.at.length ? r.at[r.next] : -1;
  };
}

function codeSpanText(raw) {
  const s = raw.replace(/\n/g, ' ');
  if (s.length > 2 && s[0] === ' ' && s[s.length - 1] === ' ' && s.trim() !== '') return s.slice(1, -1);
  return s;
}

/** A URL given as `[text](url)`: its href if the protocol is allowed, else null. */
function safeHref(raw) {
  if (!/^(?:https?|mailto):/i.test(raw)) return null;
  let url;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  return LINK_PROTOCOLS.has(url.protocol) ? url.href : null;
}

/**
 * The `(url)` after a link's `]` at `p`: spaces, a destination without spaces or control
 * characters (parentheses balanced), spaces, `)`. Returns { href, end } or null.
 */
function linkDestination(src, p) {
  if (src[p] !== '(') return null;
  let i = p + 1;
  while (src[i] === ' ' || src[i] === '\t') i++;
  const start = i;
  const limit = Math.min(src.length, start + MAX_DESTINATION);
  let depth = 0;
  for (; i < limit; i++) {
    const c = src.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) break;
    if (c === 0x28) {
      if (++depth > 32) return null;
    } else if (c === 0x29) {
      if (depth === 0) break;
      depth--;
    }
  }
  const dest = src.slice(start, i);
  while (src[i] === ' ' || src[i] === '\t') i++;
  if (src[i] !== ')' || depth !== 0 || !dest) return null;
  const href = safeHref(dest);
  return href ? { href, end: i + 1 } : null;
}

/**
 * A bare http(s) URL starting at `i` (trailing punctuation is left out, a closing
 * parenthesis kept when the URL opened one). Returns
 * { text, href, end }, or { end } for something URL-like that is not a link (shown as text).
 */
function bareUrl(src, i, inBrackets) {
  let p = i + 4;
  if (src.slice(i, p).toLowerCase() !== 'http') return null;
  if (src[p] === 's' || src[p] === 'S') p++;
  if (src.slice(p, p + 3) !== '://') return null;
  let end = p + 3;
  while (end < src.length) {
    const c = src[end];
    if (URL_STOP.includes(c) || SPACE.test(c) || (inBrackets && c === ']')) break;
    end++;
  }
  let cut = end;
  while (cut > p + 3 && URL_TRAILING.includes(src[cut - 1])) cut--;
  let url = src.slice(i, cut);
  if (src[cut] === ')' && cut < end && url.includes('(') && !url.includes(')')) {
    url += ')';
    cut++;
  }
  if (url.length < 10) return { end: cut };
  let href = null;
  try {
    const parsed = new URL(url);
    if (parsed.protocol === 'http:' || parsed.protocol === 'https:') href = parsed.href;
  } catch { /* not a URL after all */ }
  return href ? { text: url, href, end: cut } : { end };
}

/** Characters after which a bare `www.` address is a link (besides whitespace and the start). */
const WWW_LEAD = '(*_~';
const HOST = /^www\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$/i;

/**
 * A bare `www.` address starting at `i`, linked as https (trailing punctuation left out, as
 * for bare URLs): { text, href, end }, { end } for something address-like that is not a
 * link, or null when `www.` does not start here.
 */
function bareWww(src, i, inBrackets) {
  if (src.slice(i, i + 4).toLowerCase() !== 'www.') return null;
  let end = i + 4;
  while (end < src.length) {
    const c = src[end];
    if (URL_STOP.includes(c) || SPACE.test(c) || (inBrackets && c === ']')) break;
    end++;
  }
  let cut = end;
  while (cut > i + 4 && URL_TRAILING.includes(src[cut - 1])) cut--;
  let text = src.slice(i, cut);
  if (src[cut] === ')' && cut < end && text.includes('(') && !text.includes(')')) {
    text += ')';
    cut++;
  }
  const host = text.split(/[/?#:]/, 1)[0];
  if (!HOST.test(host)) return { end: cut };
  let href = null;
  try {
    href = new URL(`https://${text}`).href;
  } catch { /* not an address after all */ }
  return href ? { text, href, end: cut } : { end: cut };
}

/** `#room` at `i`: the name (lowercased) and where it ends, or null. */
function roomRef(src, i) {
  const from = i + 1;
  let j = from;
  while (j < src.length && j - from <= MAX_ROOM_NAME && ROOM_CHAR.test(src[j])) j++;
  // A trailing `_` is more likely the end of emphasis than part of the name.
  while (j > from && src[j - 1] === '_') j--;
  const len = j - from;
  if (len < 1 || len > MAX_ROOM_NAME || !ALNUM.test(src[from])) return null;
  // The name must end where the word does (not cut off at the length limit, not followed
  // by a letter that no room name can contain).
  if (j < src.length && ROOM_CHAR.test(src[j]) && src[j] !== '_') return null;
  if (j < src.length && LETTER_OR_DIGIT.test(charAfter(src, j))) return null;
  return { name: src.slice(from, j).toLowerCase(), end: j };
}

class Tokens {
  constructor() {
    this.head = null;
    this.tail = null;
  }

  push(tok) {
    tok.prev = this.tail;
    tok.next = null;
    if (this.tail) this.tail.next = tok;
    else this.head = tok;
    this.tail = tok;
    return tok;
  }

  remove(tok) {
    if (tok.prev) tok.prev.next = tok.next;
    else this.head = tok.next;
    if (tok.next) tok.next.prev = tok.prev;
    else this.tail = tok.prev;
  }

  /** Detach the tokens strictly between `a` and `b` and put `tok` there instead. */
  replaceBetween(a, b, tok) {
    const first = a.next;
    if (first !== b) {
      tok.first = first;
      tok.last = b.prev;
      tok.first.prev = null;
      tok.last.next = null;
    }
    a.next = tok;
    tok.prev = a;
    tok.next = b;
    b.prev = tok;
  }
}

function inline(src, ctx) {
  const toks = new Tokens();
  const delims = { head: null, tail: null, seq: 0 };
  const brackets = [];
  let activeFrom = 0; // brackets below this index can no longer open a link
  const closingRun = backtickRuns(src);
  const mentionEnd = new Map(ctx.me ? findMentions(src, ctx.me).concat(findMentions(src, 'here')) : []);
  const mentionText = `@${ctx.me}`.toLowerCase();
  let text = '';
  const flush = () => {
    if (text) {
      toks.push({ t: 'text', s: text });
      text = '';
    }
  };

  const n = src.length;
  let i = 0;
  while (i < n) {
    PLAIN.lastIndex = i;
    const plain = PLAIN.exec(src);
    if (plain) {
      text += plain[0];
      i += plain[0].length;
      continue;
    }
    const c = src[i];

    if (c === '\\') {
      const next = src[i + 1];
      if (next !== undefined && ESCAPABLE.includes(next)) {
        text += next;
        i += 2;
      } else {
        text += c;
        i++;
      }
    } else if (c === '`') {
      let j = i;
      while (src[j] === '`') j++;
      const close = closingRun(j - i, j);
      if (close >= 0) {
        flush();
        toks.push({ t: 'code', s: codeSpanText(src.slice(j, close)) });
        i = close + (j - i);
      } else {
        text += src.slice(i, j);
        i = j;
      }
    } else if (c === '*' || c === '_' || c === '~') {
      let j = i;
      while (src[j] === c) j++;
      const run = src.slice(i, j);
      const len = j - i;
      i = j;
      if (c === '~' && len !== 2) {
        text += run;
        continue;
      }
      const before = charBefore(src, i - len);
      const after = charAfter(src, j);
      const spaceBefore = SPACE.test(before);
      const spaceAfter = SPACE.test(after);
      const punctBefore = PUNCT.test(before);
      const punctAfter = PUNCT.test(after);
      const left = !spaceAfter && (!punctAfter || spaceBefore || punctBefore);
      const right = !spaceBefore && (!punctBefore || spaceAfter || punctAfter);
      // `_` only opens or closes at a word's edge: snake_case stays as it is.
      const canOpen = c === '_' ? left && (!right || punctBefore) : left;
      const canClose = c === '_' ? right && (!left || punctAfter) : right;
      flush();
      const tok = toks.push({ t: 'text', s: run });
      if (canOpen || canClose) {
        const d = {
          tok, ch: c, len, orig: len, canOpen, canClose, seq: delims.seq++, prev: delims.tail, next: null,
        };
        if (delims.tail) delims.tail.next = d;
        else delims.head = d;
        delims.tail = d;
      }
    } else if (c === '[') {
      flush();
      brackets.push({ tok: toks.push({ t: 'text', s: '[' }), bottom: delims.tail });
      i++;
    } else if (c === ']') {
      flush();
      const opener = brackets.length > activeFrom ? brackets[brackets.length - 1] : null;
      const dest = opener && opener.tok.next ? linkDestination(src, i + 1) : null;
      if (dest) {
        // Emphasis inside the link text is resolved first, then the text moves into the link.
        processEmphasis(toks, delims, opener.bottom);
        const link = { t: 'link', href: dest.href, first: opener.tok.next, last: null };
        if (link.first) {
          link.last = toks.tail;
          link.first.prev = null;
          opener.tok.next = null;
          toks.tail = opener.tok;
        }
        toks.push(link);
        toks.remove(opener.tok);
        brackets.pop();
        // No links inside links: every earlier `[` is now plain text.
        activeFrom = brackets.length;
        i = dest.end;
      } else {
        if (brackets.length) brackets.pop();
        activeFrom = Math.min(activeFrom, brackets.length);
        text += ']';
        i++;
      }
    } else if ((c === 'h' || c === 'H') && (i === 0 || !WORD.test(src[i - 1]))) {
      const url = bareUrl(src, i, brackets.length > 0);
      if (url && url.href) {
        flush();
        toks.push({ t: 'url', s: url.text, href: url.href });
        i = url.end;
      } else if (url) {
        text += src.slice(i, url.end);
        i = url.end;
      } else {
        text += c;
        i++;
      }
    } else if ((c === 'w' || c === 'W') && (i === 0 || SPACE.test(src[i - 1]) || WWW_LEAD.includes(src[i - 1]))) {
      const www = bareWww(src, i, brackets.length > 0);
      if (www && www.href) {
        flush();
        toks.push({ t: 'url', s: www.text, href: www.href });
        i = www.end;
      } else if (www) {
        text += src.slice(i, www.end);
        i = www.end;
      } else {
        text += c;
        i++;
      }
    } else if (c === '@' && mentionEnd.has(i)
      && [mentionText, '@here'].includes(src.slice(i, mentionEnd.get(i)).toLowerCase())) {
      flush();
      toks.push({ t: 'mention', s: src.slice(i, mentionEnd.get(i)) });
      i = mentionEnd.get(i);
    } else if (c === '#' && (i === 0 || SPACE.test(src[i - 1]) || ROOM_LEAD.includes(src[i - 1]))) {
      const room = roomRef(src, i);
      if (room) {
        flush();
        toks.push({ t: 'room', s: src.slice(i, room.end), name: room.name });
        i = room.end;
      } else {
        text += c;
        i++;
      }
    } else {
      text += c;
      i++;
    }
  }
  flush();
  processEmphasis(toks, delims, null);
  return toDom(toks.head, ctx);
}

/**
 * Match the delimiter runs above `bottom` (CommonMark's "process emphasis"): each closer looks
 * back for the nearest compatible opener; the lower bound per kind of closer means no part of
 * the stack is searched twice for the same kind. Afterwards no delimiter above `bottom` is
 * left on the stack (unmatched ones are plain text).
 */
function processEmphasis(toks, delims, bottom) {
  const bottomSeq = bottom ? bottom.seq : -1;
  const floors = new Map();
  let closer = bottom ? bottom.next : delims.head;
  while (closer) {
    if (!closer.canClose) {
      closer = closer.next;
      continue;
    }
    const kind = `${closer.ch}${closer.canOpen ? 1 : 0}${closer.orig % 3}`;
    const floor = Math.max(bottomSeq, floors.has(kind) ? floors.get(kind) : -1);
    let opener = closer.prev;
    while (opener && opener.seq > floor && !compatible(opener, closer)) opener = opener.prev;
    if (opener && opener.seq > floor) {
      const use = closer.ch === '~' ? 2 : (opener.len >= 2 && closer.len >= 2 ? 2 : 1);
      const tag = closer.ch === '~' ? 'del' : use === 2 ? 'strong' : 'em';
      opener.len -= use;
      opener.tok.s = opener.tok.s.slice(use);
      closer.len -= use;
      closer.tok.s = closer.tok.s.slice(use);
      toks.replaceBetween(opener.tok, closer.tok, { t: 'elem', tag, first: null, last: null });
      // The delimiters in between are inside the new element now: drop them.
      opener.next = closer;
      closer.prev = opener;
      if (opener.len === 0) {
        toks.remove(opener.tok);
        unlinkDelim(delims, opener);
      }
      if (closer.len === 0) {
        const next = closer.next;
        toks.remove(closer.tok);
        unlinkDelim(delims, closer);
        closer = next;
      }
    } else {
      floors.set(kind, closer.prev ? closer.prev.seq : -1);
      const next = closer.next;
      if (!closer.canOpen) unlinkDelim(delims, closer);
      closer = next;
    }
  }
  if (bottom) bottom.next = null;
  else delims.head = null;
  delims.tail = bottom;
}

function compatible(opener, closer) {
  if (opener.ch !== closer.ch || !opener.canOpen) return false;
  if (closer.ch === '~') return true;
  // CommonMark's "rule of 3" for runs that can both open and close.
  return !((opener.canClose || closer.canOpen)
    && (opener.orig + closer.orig) % 3 === 0
    && !(opener.orig % 3 === 0 && closer.orig % 3 === 0));
}

function unlinkDelim(delims, d) {
  if (d.prev) d.prev.next = d.next;
  else delims.head = d.next;
  if (d.next) d.next.prev = d.prev;
  else delims.tail = d.prev;
}

/** A link's attributes: a new tab, except for a permalink into this page (followed here). */
function linkAttrs(href) {
  const local = localPermalink(href);
  if (local) return { href: local, class: 'permalink' };
  return { href, target: '_blank', rel: LINK_REL };
}

/** The token list as DOM nodes, without recursion (emphasis may nest deeply). */
function toDom(head, ctx) {
  const root = document.createDocumentFragment();
  const stack = [{ tok: head, parent: root, inLink: false, depth: 0, text: '' }];
  // Text is gathered per element and added as one node before the next element (or the end).
  const flush = (frame) => {
    if (frame.text) frame.parent.append(document.createTextNode(frame.text));
    frame.text = '';
  };
  while (stack.length) {
    const frame = stack[stack.length - 1];
    const tok = frame.tok;
    if (!tok) {
      flush(frame);
      stack.pop();
      continue;
    }
    frame.tok = tok.next;
    const { parent, inLink, depth } = frame;
    // Links are never nested: a URL or room inside a link's text stays text.
    const asText = tok.t === 'text'
      || (inLink && (tok.t === 'url' || tok.t === 'room'))
      || (tok.t === 'room' && !ctx.roomLinks);
    if (asText) {
      frame.text += tok.s;
      continue;
    }
    flush(frame);
    switch (tok.t) {
      case 'code':
        parent.append(h('code', null, tok.s));
        break;
      case 'mention':
        parent.append(h('mark', { class: 'mention-me' }, tok.s));
        break;
      case 'url':
        parent.append(h('a', linkAttrs(tok.href), tok.s));
        break;
      case 'room':
        parent.append(h('a', {
          class: 'room-ref', href: `#${tok.name}`, dataset: { room: tok.name },
        }, tok.s));
        break;
      case 'elem': {
        let into = parent;
        if (depth < MAX_INLINE_DEPTH) {
          into = document.createElement(tok.tag);
          parent.append(into);
        }
        stack.push({ tok: tok.first, parent: into, inLink, depth: depth + 1, text: '' });
        break;
      }
      case 'link': {
        const a = h('a', { ...linkAttrs(tok.href), title: tok.href });
        parent.append(a);
        stack.push({ tok: tok.first, parent: a, inLink: true, depth: depth + 1, text: '' });
        break;
      }
      default:
        break;
    }
  }
  return root;
}
