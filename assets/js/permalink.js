// Links to one message: `PAGE#ROOM/ID`, where PAGE is the chat page's address without query or
// fragment, ROOM the room or DM name percent-encoded as in the page's own `#ROOM` address (so a
// `/` in a name would be `%2F`) and ID the message id. Opening one opens the room at that
// message; a same-origin one inside a message opens in the page.

/** The chat page's address, without query or fragment. */
export function pageBase() {
  return `${window.location.origin}${window.location.pathname}`;
}

/** The permalink of message `id` in `room`. */
export function permalinkFor(room, id) {
  return `${pageBase()}#${encodeURIComponent(room)}/${id}`;
}

/**
 * A page fragment (`#general`, `#general/1234`, `#dm%3Aalice%2Cbob/7`) as { room, id }: the
 * room name ('' when there is none or it is malformed) and the message id (null when absent).
 * Rooms are named in any case, as the server takes them: `#General` is the room general.
 */
export function parseHash(hash) {
  const raw = String(hash || '').replace(/^#/, '');
  if (!raw) return { room: '', id: null };
  const m = /^([^/]+)\/(\d{1,15})$/.exec(raw);
  const part = m ? m[1] : raw;
  let room = '';
  try {
    room = decodeURIComponent(part).replace(/[A-Z]/g, (c) => c.toLowerCase());
  } catch {
    room = '';
  }
  return { room, id: m && room ? Number(m[2]) : null };
}

/**
 * When `href` is a permalink into this very page (same origin and path), its fragment
 * (`#general/1234`), to be followed in the page; otherwise null.
 */
export function localPermalink(href) {
  let url;
  try {
    url = new URL(href);
  } catch {
    return null;
  }
  if (url.origin !== window.location.origin || url.pathname !== window.location.pathname) return null;
  return parseHash(url.hash).id != null ? url.hash : null;
}

/** Put `text` on the clipboard; false where the page may not (the caller shows it instead). */
export async function copyText(text) {
  if (navigator.clipboard && typeof navigator.clipboard.writeText === 'function') {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch { /* not allowed here */ }
  }
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'visually-hidden';
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch { /* not copied */ }
  area.remove();
  return ok;
}
