// Hearth's service worker: keeps the app shell (the page, its scripts, styles and icons) so that
// a reload while the server is out of reach opens the app in its "reconnecting" state instead
// of the browser's error page.
//
// Network first, always: every request for a shell file goes to the server, and the answer
// (when it is a success) replaces the kept copy. The kept copy is only used when the server
// cannot be reached (or a proxy in front of it answers 5xx), so a new version of Hearth is
// never hidden behind an old cache. Nothing private is kept: the API, the WebSocket and every
// other path pass through untouched, and the shell files are the same for everyone.

const CACHE = 'hearth-shell-v1';
const SHELL_FILE = /^[a-z0-9][a-z0-9._/-]*\.(?:html|js|css|svg|png|webp|ico|woff2?|webmanifest)$/i;

self.addEventListener('install', () => {
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names.filter((n) => n.startsWith('hearth-shell-') && n !== CACHE).map((n) => caches.delete(n)));
    await self.clients.claim();
  })());
});

/** The shell path of `url` relative to this worker's scope, or null when it is not a shell file. */
function shellPath(url) {
  const scope = self.registration.scope;
  if (!url.startsWith(scope)) return null;
  const rest = url.slice(scope.length).split(/[?#]/, 1)[0];
  if (rest === '' || rest === 'index.html') return '';
  if (rest === 'sw.js' || rest.startsWith('api/')) return null;
  return SHELL_FILE.test(rest) ? rest : null;
}

/** The cache key of a shell path: the page is kept once, whatever query it was opened with. */
function keyOf(path) {
  return new URL(path, self.registration.scope).href;
}

async function networkFirst(request, path) {
  const cache = await caches.open(CACHE);
  const key = keyOf(path);
  let response = null;
  try {
    response = await fetch(request);
  } catch {
    response = null;
  }
  if (response && response.ok && response.type === 'basic') {
    await cache.put(key, response.clone()).catch(() => {});
    return response;
  }
  if (response && response.status < 500) return response;
  const kept = await cache.match(key);
  if (kept) return kept;
  if (response) return response;
  return Response.error();
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const path = shellPath(request.url);
  if (path === null) return;
  event.respondWith(networkFirst(request, path));
});

// The page tells the worker which shell files it loaded before the worker was in control, so
// that the very first visit is enough for the next offline reload.
self.addEventListener('message', (event) => {
  const data = event.data;
  if (!data || data.type !== 'keep' || !Array.isArray(data.urls)) return;
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    for (const url of data.urls.slice(0, 200)) {
      const path = typeof url === 'string' ? shellPath(url) : null;
      if (path === null) continue;
      const key = keyOf(path);
      if (await cache.match(key)) continue;
      try {
        const response = await fetch(key, { credentials: 'same-origin' });
        if (response.ok && response.type === 'basic') await cache.put(key, response);
      } catch {
        // Offline already: nothing to keep now; the next visit fills it in.
      }
    }
  })());
});

// Web Push: a mention or a direct message while no Hearth page is open. The payload is
// {room, id, user, body}; the notification opens (or focuses) the chat at that message.
self.addEventListener('push', (event) => {
  let note = null;
  try {
    note = event.data ? event.data.json() : null;
  } catch {
    note = null;
  }
  if (!note || typeof note.room !== 'string') return;
  const who = String(note.user || 'Someone');
  const title = note.room.startsWith('dm:') ? `${who} sent you a message`
    : note.reason === 'mention' ? `${who} mentioned you in #${note.room}`
      : `${who} in #${note.room}`;
  event.waitUntil(self.registration.showNotification(title, {
    body: String(note.body || ''),
    tag: `hearth-${note.room}`,
    icon: 'icons/icon-192.png',
    data: { room: note.room, id: Number(note.id) || 0 },
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  const target = new URL(`./#${encodeURIComponent(String(data.room || ''))}${data.id ? `/${data.id}` : ''}`, self.registration.scope).href;
  event.waitUntil((async () => {
    const open = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const client of open) {
      if (client.url.startsWith(self.registration.scope) && 'focus' in client) {
        await client.focus();
        if ('navigate' in client) await client.navigate(target).catch(() => {});
        return;
      }
    }
    await self.clients.openWindow(target);
  })());
});
