// Web Push on this device: subscribe the service worker's push manager with the server's
// VAPID key and hand the subscription to the server, or take it back. Needs a secure context
// (HTTPS or localhost) and a browser with a push service. The server keeps this device's
// settings (what to push, quiet hours) and its clock's offset from UTC, refreshed on each
// visit so quiet hours follow time zones and daylight saving time.

import { api } from './api.js';

/** Whether this browser can receive pushes here. */
export function pushSupported() {
  return window.isSecureContext && 'serviceWorker' in navigator && 'PushManager' in window
    && 'Notification' in window;
}

function keyBytes(base64url) {
  const b64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function registration() {
  return navigator.serviceWorker.ready;
}

/** This device's clock: minutes east of UTC. */
export function utcOffset() {
  return -new Date().getTimezoneOffset();
}

/** An endpoint as the server writes it (both follow the URL standard). */
export function sameEndpoint(a, b) {
  try {
    return new URL(a).href === new URL(b).href;
  } catch {
    return a === b;
  }
}

/** This browser's push endpoint, or null when it has none. */
export async function currentEndpoint() {
  if (!pushSupported()) return null;
  const reg = await registration();
  const sub = await reg.pushManager.getSubscription();
  return sub ? sub.endpoint : null;
}

/** Tell the server this device's clock once per visit (quiet hours are read on it). */
export async function syncPushClock() {
  const endpoint = await currentEndpoint().catch(() => null);
  if (!endpoint) return;
  // 404: this browser's subscription belongs to no one here any more (signed out); left alone.
  await api.updatePush(endpoint, { utc_offset: utcOffset() }).catch(() => {});
}

/** Subscribe this device; throws an Error with a sentence for people when it cannot. */
export async function enablePush() {
  if (!pushSupported()) throw new Error('This browser cannot receive push notifications here (it needs HTTPS).');
  const permission = await Notification.requestPermission();
  if (permission !== 'granted') throw new Error('Notifications are blocked for this site in the browser’s settings.');
  const { public_key: key } = await api.pushKey();
  const reg = await registration();
  let sub;
  try {
    sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
  } catch (err) {
    throw new Error(`The browser’s push service is not available: ${err && err.message ? err.message : err}`);
  }
  await api.subscribePush({ ...sub.toJSON(), utc_offset: utcOffset() });
}

/** Unsubscribe this device (here and on the server). */
export async function disablePush() {
  if (!pushSupported()) return;
  const reg = await registration();
  const sub = await reg.pushManager.getSubscription();
  if (!sub) return;
  await api.unsubscribePush(sub.endpoint).catch(() => {});
  await sub.unsubscribe();
}
