// Working without the server: the service worker that keeps the app shell (sw.js), and the
// account this browser was last signed in with, so a reload while the server is away opens the
// app (reconnecting) rather than the browser's error page.

const USER_KEY = 'hearth.user';

/** The `{id, username}` this browser was last signed in as, or null. */
export function lastUser() {
  try {
    const user = JSON.parse(window.localStorage.getItem(USER_KEY) || 'null');
    return user && typeof user.username === 'string' && user.username ? user : null;
  } catch {
    return null;
  }
}

/** Remember (or, with null, forget) who is signed in on this browser. */
export function rememberUser(user) {
  try {
    if (user && typeof user.username === 'string') {
      window.localStorage.setItem(USER_KEY, JSON.stringify({ id: user.id, username: user.username }));
    } else {
      window.localStorage.removeItem(USER_KEY);
    }
  } catch {
    // Private mode: nothing remembered; an offline reload shows the boot screen instead.
  }
}

/**
 * Register the shell worker (where the browser allows it: a secure context, which includes
 * http://localhost and 127.0.0.1) and hand it the shell files this page loaded before it was
 * in control, so the first visit is enough.
 */
export async function keepShell() {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return;
  try {
    const registration = await navigator.serviceWorker.register('sw.js');
    await navigator.serviceWorker.ready;
    const worker = registration.active;
    if (!worker) return;
    const urls = [window.location.href.split(/[?#]/, 1)[0]];
    for (const entry of performance.getEntriesByType('resource')) urls.push(entry.name);
    worker.postMessage({ type: 'keep', urls });
  } catch {
    // No worker (blocked, or an old browser): the app works as before, online only.
  }
}
