// Entry point: decide between the sign-in view and the chat view.

import { api, ApiError } from './api.js';
import { $, setText } from './dom.js';
import { SignInView } from './signin.js';
import { ChatView } from './chat.js';
import { keepShell, lastUser, rememberUser } from './offline.js';

const boot = $('#boot');
const bootStatus = $('#boot-status');

const chat = new ChatView({
  onSignedOut: (notice) => showSignIn(notice),
});

const signIn = new SignInView({
  onSignedIn: (user) => showChat(user),
});

function showSignIn(notice = '') {
  boot.hidden = true;
  rememberUser(null);
  chat.stop();
  signIn.show(notice);
}

function showChat(user) {
  boot.hidden = true;
  rememberUser(user);
  signIn.hide();
  chat.start(user);
}

async function start() {
  let delay = 1000;
  for (;;) {
    try {
      const data = await api.me();
      showChat(data.user);
      return;
    } catch (err) {
      if (err instanceof ApiError && err.isUnauthorized) {
        showSignIn();
        return;
      }
      // The server is out of reach but this browser was signed in: open the app as it was
      // (drafts, unsent messages), reconnecting; the session is checked once it answers.
      const known = lastUser();
      if (known && err instanceof ApiError && (err.isNetwork || err.status >= 500)) {
        showChat(known);
        return;
      }
      setText(bootStatus, `Can’t reach Hearth. Trying again in ${Math.round(delay / 1000)} s…`);
      await new Promise((r) => setTimeout(r, delay));
      setText(bootStatus, 'Loading…');
      delay = Math.min(delay * 2, 15000);
    }
  }
}

start();
keepShell();
