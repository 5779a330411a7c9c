#!/usr/bin/env bash
# Produce the README screenshots from a running Hearth server, and check every
# screen with axe-core when it is available.
#
#   scripts/screenshot.sh [SERVER_URL] [OUT_DIR]
#
# SERVER_URL defaults to http://127.0.0.1:12345 (it may end in a path prefix,
# e.g. http://127.0.0.1:12345/chat/) and OUT_DIR to docs/. Use a fresh server
# (empty database): the script registers four people (the viewer, sam, first,
# with the server's setup code so that they are the administrator), makes a few rooms and direct messages,
# has everyone chat over the WebSocket, then opens the app as sam in headless
# Chromium and saves:
#   OUT_DIR/screenshot.png         1280x800, light: rooms with unread and mention badges
#   OUT_DIR/screenshot-dark.png    1280x800, dark: the same, with search results open
#   OUT_DIR/screenshot-phone.png   360x740, light
#
# Environment:
#   AXE_JS=/path/to/axe.min.js  run axe-core (npm package axe-core) on every screen
#                               (chat, search, dialogs, switcher, drawer, admin, sign-in)
#                               at 1280x800 and 360x740, light and dark; it is also
#                               looked for in ./node_modules. Exit 1 on any violation.
#   SHOTS_DIR=DIR               also save a picture of every audited screen there
#   CHROMIUM=/path/to/chrome    the browser (default: chromium from PATH)
#   SETUP_CODE=CODE             the code of the setup link a fresh server logs on stderr
#                               (`...?setup=CODE`); the first person registers with it
#
# Besides axe, every screen is checked for failed requests (HTTP >= 400), CSP
# violations, console errors and horizontal overflow.
#
# Needs: python3 (standard library only), chromium and a colour emoji font for the reactions
# (Debian: apt-get install chromium fonts-noto-color-emoji).
# A quick way to get a suitable server:
#   CHAT_SERVER__PORT=12345 CHAT_DATABASE__PATH=$(mktemp -d)/shot.db \
#     CHAT_AUTH__PBKDF2_ITERATIONS=1000 ./target/debug/hearth 2>hearth.log &
#   sleep 1; export SETUP_CODE=$(grep -o 'setup=[A-Za-z0-9_-]*' hearth.log | cut -d= -f2)
set -euo pipefail

URL="${1:-http://127.0.0.1:12345}"
OUT="${2:-$(cd "$(dirname "$0")/.." && pwd)/docs}"
CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
if [[ -z "${AXE_JS:-}" && -f node_modules/axe-core/axe.min.js ]]; then AXE_JS="$PWD/node_modules/axe-core/axe.min.js"; fi
export AXE_JS="${AXE_JS:-}" SHOTS_DIR="${SHOTS_DIR:-}"

if [[ -z "$CHROMIUM" ]]; then
  echo "screenshot.sh: chromium not found (set CHROMIUM=/path/to/chrome)" >&2
  exit 1
fi
mkdir -p "$OUT"

PROFILE="$(mktemp -d)"
cleanup() {
  if [[ -n "${CHROME_PID:-}" ]]; then kill "$CHROME_PID" 2>/dev/null || true; wait "$CHROME_PID" 2>/dev/null || true; fi
  rm -rf "$PROFILE"
}
trap cleanup EXIT

"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --remote-debugging-port=0 --user-data-dir="$PROFILE" \
  --lang=en-US --font-render-hinting=none \
  about:blank >/dev/null 2>&1 &
CHROME_PID=$!

python3 - "$URL" "$OUT" "$PROFILE" <<'PY'
import base64, json, os, socket, struct, sys, time, urllib.error, urllib.parse, urllib.request

URL, OUT, PROFILE = sys.argv[1].rstrip('/'), sys.argv[2], sys.argv[3]
AXE_JS, SHOTS_DIR = os.environ.get('AXE_JS', ''), os.environ.get('SHOTS_DIR', '')
ORIGIN = '{0.scheme}://{0.netloc}'.format(urllib.parse.urlsplit(URL))
PASSWORD = 'hearth-screenshot-1'


class WebSocket:
    """A minimal RFC 6455 client: text frames, pings, no TLS."""

    def __init__(self, url, headers=None, timeout=15):
        u = urllib.parse.urlsplit(url)
        if u.scheme != 'ws':
            raise SystemExit(f'only ws:// URLs are supported, got {url}')
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = (u.path or '/') + (f'?{u.query}' if u.query else '')
        lines = [f'GET {path} HTTP/1.1', f'Host: {u.netloc}', 'Upgrade: websocket',
                 'Connection: Upgrade', f'Sec-WebSocket-Key: {key}', 'Sec-WebSocket-Version: 13']
        lines += [f'{k}: {v}' for k, v in (headers or {}).items()]
        self.sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode())
        buf = b''
        while b'\r\n\r\n' not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError('connection closed during the handshake')
            buf += chunk
        head, self.buf = buf.split(b'\r\n\r\n', 1)
        status = head.split(b'\r\n', 1)[0].decode(errors='replace')
        if ' 101 ' not in status + ' ':
            raise ConnectionError(f'WebSocket upgrade refused: {status}')

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError('connection closed')
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack('!BB', 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack('!BBH', 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack('!BBQ', 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, obj):
        self._frame(1, json.dumps(obj).encode())

    def recv(self):
        message = b''
        while True:
            b1, b2 = self._read(2)
            opcode, n = b1 & 0x0F, b2 & 0x7F
            if n == 126:
                n = struct.unpack('!H', self._read(2))[0]
            elif n == 127:
                n = struct.unpack('!Q', self._read(8))[0]
            mask = self._read(4) if b2 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i & 3] for i, b in enumerate(data))
            if opcode == 9:
                self._frame(10, data)
                continue
            if opcode == 10:
                continue
            if opcode == 8:
                raise ConnectionError('closed by the other side')
            message += data
            if b1 & 0x80:
                return json.loads(message)

    def close(self):
        try:
            self._frame(8, struct.pack('!H', 1000))
        except OSError:
            pass
        self.sock.close()


def request(method, path, body=None, cookie=None):
    headers = {'Content-Type': 'application/json', 'Origin': ORIGIN}
    if cookie:
        headers['Cookie'] = f'hearth_session={cookie}'
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req) as res:
            return res.status, res.headers.get_all('Set-Cookie') or []
    except urllib.error.HTTPError as e:
        return e.code, []


def session_for(username):
    account = {'username': username, 'password': PASSWORD}
    if os.environ.get('SETUP_CODE'):
        account['setup'] = os.environ['SETUP_CODE']
    status, cookies = request('POST', '/api/register', account)
    if status == 409:
        status, cookies = request('POST', '/api/login', {'username': username, 'password': PASSWORD})
    if status not in (200, 201):
        raise SystemExit(f'could not register or sign in {username}: HTTP {status}')
    for c in cookies:
        name, _, rest = c.partition('=')
        if name.strip() == 'hearth_session':
            return rest.split(';', 1)[0]
    raise SystemExit('no hearth_session cookie in the answer')


def ws_url():
    with urllib.request.urlopen(URL + '/config.js') as res:
        text = res.read().decode()
    config = json.loads(text[text.index('{'):text.rindex('}') + 1])
    return config['ws']


# ---- 1. People, rooms and conversations -------------------------------------------------
VIEWER = 'sam'
PEOPLE = ['sam', 'maya', 'theo', 'priya']   # the first account is the administrator
cookies = {p: session_for(p) for p in PEOPLE}


def api(who, method, path, body=None, ok=(200, 201, 204, 409)):
    status, _ = request(method, path, body, cookies[who])
    if status not in ok:
        raise SystemExit(f'{method} {path} as {who}: HTTP {status}')


ROOMS = [  # (creator, name, topic, public, members)
    ('maya', 'cabin-weekend', 'Saturday and Sunday at the lake cabin: who brings what', True, ['sam', 'theo', 'priya']),
    ('theo', 'book-club', 'This month: The Left Hand of Darkness', True, ['sam', 'maya', 'priya']),
    ('priya', 'garden', 'Allotment plot 14', False, ['sam', 'maya']),
    ('theo', 'random', '', True, ['sam', 'maya', 'priya']),
]
for creator, name, topic, public, members in ROOMS:
    api(creator, 'POST', '/api/rooms', {'name': name, 'topic': topic, 'public': public})
    for m in members:
        if public:
            api(m, 'POST', f'/api/rooms/{name}/join')
        else:
            api(creator, 'POST', f'/api/rooms/{name}/members', {'username': m})
api(VIEWER, 'PUT', '/api/rooms/random/notify', {'level': 'nothing'})
api('maya', 'POST', '/api/dms', {'users': ['sam']})
api('theo', 'POST', '/api/dms', {'users': ['sam', 'priya']})
DM_MAYA, DM_GROUP = 'dm:maya,sam', 'dm:priya,sam,theo'

# Everything but the open room (cabin-weekend) stays unread for sam.
CONVERSATION = [
    ('random', 'theo', 'The sunset from the ferry tonight was unreal.'),
    ('general', 'theo', 'Reminder: the water is off on Thursday from 9 to 11 am.'),
    ('book-club', 'theo', 'Chapter 12 thread! No spoilers past the blizzard, please.'),
    ('book-club', 'maya', 'The loneliness in that chapter is something else.'),
    ('garden', 'priya', 'The tomatoes are finally turning red.'),
    ('cabin-weekend', 'maya', 'Morning all! Is the cabin weekend still on for Saturday?'),
    ('cabin-weekend', 'theo', 'Yes! Booked it last night.'),
    ('cabin-weekend', 'theo', 'Check-in is from 3 pm. The key is in the lockbox by the door, the code is in the notes.'),
    ('cabin-weekend', 'priya', 'Amazing. I can drive from the station: room for three more people and a cooler.'),
    ('cabin-weekend', 'sam', 'Count me in for a seat. I will bring the good coffee.'),
    ('book-club', 'priya', 'Only halfway through, see you next week.'),
    ('cabin-weekend', 'maya', '@sam could you bring the board games too?'),
    ('cabin-weekend', 'sam', 'Already packed: *Carcassonne* and the card game everyone loves.', 11),
    ('cabin-weekend', 'priya', 'I will do my **dal and rice** on Saturday, it scales well.\nSomeone else on dessert?'),
    ('general', 'priya', '@sam did you get the parcel I left at the front desk?'),
    ('cabin-weekend', 'theo', 'Dessert is mine. Thinking apple crumble with a lot of custard.', 13),
    (DM_GROUP, 'theo', 'Surprise cake for Maya on Saturday?'),
    (DM_GROUP, 'priya', 'Yes! I will hide it in the cooler.'),
    ('book-club', 'theo', 'Next meeting: Thursday at 7, my place.'),
    (DM_MAYA, 'maya', 'Hey, do you still have the spare sleeping bag?'),
    (DM_MAYA, 'maya', 'The lake is cold this time of year, pack a towel!'),
    ('cabin-weekend', 'maya', 'Packing list so far:\n```\ntent x2, stove, board games\ncoffee (sam), crumble (theo)\n```\nLeave around noon on Saturday?'),
]

ws_base = ws_url()
sockets = {}
for p in PEOPLE:
    ws = WebSocket(f'{ws_base}?since=0', {'Cookie': f'hearth_session={cookies[p]}', 'Origin': ORIGIN})
    frame = ws.recv()
    if frame.get('type') != 'ready':
        raise SystemExit(f'expected ready, got {frame}')
    sockets[p] = ws

# What happened to some of those messages afterwards (by index in CONVERSATION).
REACTIONS = [(6, 'maya', '🎉'), (6, 'priya', '🎉'), (6, 'sam', '🎉'), (6, 'priya', '❤️'),
             (15, 'priya', '👍'), (15, 'sam', '😋')]
EDITS = [(7, 'Check-in is from **3 pm**. The key is in the lockbox by the door, code `4821`.')]


def answered(ws, nonce, kind):
    while True:
        frame = ws.recv()
        if frame.get('type') == kind and frame.get('nonce') == nonce:
            return frame
        if frame.get('type') == 'error':
            raise SystemExit(f'server refused {kind}: {frame}')


ids = []
for i, (room, who, body, *reply) in enumerate(CONVERSATION):
    nonce = f'shot-{int(time.time())}-{i}'
    frame = {'type': 'send', 'room': room, 'body': body, 'nonce': nonce}
    if reply:
        frame['reply_to'] = ids[reply[0]]
    sockets[who].send(frame)
    ids.append(answered(sockets[who], nonce, 'message')['id'])
    time.sleep(0.05)
for i, (index, who, emoji) in enumerate(REACTIONS):
    nonce = f'shot-react-{i}'
    sockets[who].send({'type': 'react', 'id': ids[index], 'emoji': emoji, 'on': True, 'nonce': nonce})
    answered(sockets[who], nonce, 'reaction')
for i, (index, body) in enumerate(EDITS):
    who = CONVERSATION[index][1]
    nonce = f'shot-edit-{i}'
    sockets[who].send({'type': 'edit', 'id': ids[index], 'body': body, 'nonce': nonce})
    answered(sockets[who], nonce, 'edited')
# The viewer has read the open room up to its last message, so it opens at the bottom.
api(VIEWER, 'POST', '/api/rooms/cabin-weekend/read', {'id': ids[-1]})
# The viewer's other connection goes away so that the page is their only one.
sockets.pop(VIEWER).close()

# ---- 2. Chromium over the DevTools protocol ------------------------------------------
port_file = os.path.join(PROFILE, 'DevToolsActivePort')
for _ in range(200):
    if os.path.exists(port_file) and open(port_file).read().strip():
        break
    time.sleep(0.05)
else:
    raise SystemExit('chromium did not start')
devtools_port = int(open(port_file).read().split()[0])
with urllib.request.urlopen(f'http://127.0.0.1:{devtools_port}/json/list') as res:
    page = next(t for t in json.load(res) if t['type'] == 'page')
cdp = WebSocket(page['webSocketDebuggerUrl'], timeout=60)
next_id = 0
events = []   # problems seen by the browser since the last screen was checked


def on_event(msg):
    method, p = msg.get('method'), msg.get('params', {})
    if method == 'Network.responseReceived':
        r = p['response']
        if r['status'] >= 400:
            events.append(f"HTTP {r['status']} {r['url']}")
    elif method == 'Network.loadingFailed' and not p.get('canceled'):
        events.append(f"request failed: {p.get('errorText')} ({p.get('blockedReason') or p.get('type')})")
    elif method == 'Log.entryAdded':
        e = p['entry']
        if e['level'] == 'error':
            events.append(f"console ({e['source']}): {e['text']} {e.get('url', '')}")
    elif method == 'Runtime.exceptionThrown':
        d = p['exceptionDetails']
        events.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
    elif method == 'Runtime.consoleAPICalled' and p.get('type') == 'error':
        events.append('console.error: ' + ' '.join(str(a.get('value', a.get('description', ''))) for a in p['args']))


def call(method, **params):
    global next_id
    next_id += 1
    cdp.send({'id': next_id, 'method': method, 'params': params})
    while True:
        msg = cdp.recv()
        if msg.get('id') == next_id:
            if 'error' in msg:
                raise SystemExit(f'{method}: {msg["error"]}')
            return msg.get('result', {})
        if 'method' in msg:
            on_event(msg)


def evaluate(expression, awaitPromise=False):
    r = call('Runtime.evaluate', expression=expression, returnByValue=True, awaitPromise=awaitPromise)
    if 'exceptionDetails' in r:
        raise SystemExit(f'page script failed: {r["exceptionDetails"]}')
    return r['result'].get('value')


def wait_for(expression, what, timeout=20):
    deadline = time.time() + timeout
    guarded = f'(() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }})()'
    while time.time() < deadline:
        if evaluate(guarded):
            return
        time.sleep(0.1)
    if SHOTS_DIR:
        capture(os.path.join(SHOTS_DIR, 'timed-out.png'))
    raise SystemExit(f'timed out waiting for {what}: {expression}')


def key(k, code, vk, modifiers=0):
    for kind in ('rawKeyDown', 'keyUp'):
        call('Input.dispatchKeyEvent', type=kind, key=k, code=code, windowsVirtualKeyCode=vk, modifiers=modifiers)


call('Network.enable')
call('Log.enable')
call('Runtime.enable')
# CSP violations are also recorded by the page itself.
call('Page.addScriptToEvaluateOnNewDocument', source=(
    "window.__csp = []; document.addEventListener('securitypolicyviolation',"
    " (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"))


def goto(url):
    """A fresh page load (also when only the #fragment differs from the current address)."""
    for ws in sockets.values():  # keep everyone online: the server drops silent connections
        ws._frame(9, b'')
    call('Page.navigate', url='about:blank')
    wait_for("location.href === 'about:blank'", 'a blank page')
    call('Page.navigate', url=url)
    wait_for(f"location.href.startsWith({json.dumps(url)}) && document.readyState !== 'loading'", url)


def sign_in_browser():
    call('Network.setCookie', name='hearth_session', value=cookies[VIEWER], url=URL + '/', httpOnly=True)


ROOM = 'cabin-weekend'
READY = ("(() => { const c = document.querySelector('#conn'); return c && c.dataset.state === 'connected'"
         " && document.querySelectorAll('#messages .msg').length >= 10"
         " && !!document.querySelector('#room-list a[data-room=\"book-club\"] .room-unread')"
         " && !!document.querySelector('#dm-list a[data-room]'); })()")


def open_chat():
    goto(f'{URL}/#{ROOM}')
    wait_for(READY, 'the chat page')
    time.sleep(0.3)


def show_typing():
    # Someone typing makes the picture feel alive (typing notices are throttled: repeat).
    for _ in range(40):
        sockets['priya'].send({'type': 'typing', 'room': ROOM})
        if evaluate("document.querySelector('#typing').textContent.includes('typing')"):
            return
        time.sleep(0.5)


def blur():
    evaluate("document.activeElement && document.activeElement.blur()")


def scene_chat(phone):
    open_chat()
    show_typing()
    blur()


def scene_search(phone):
    open_chat()
    evaluate("document.querySelector('#search-input').value = 'saturday';"
             " document.querySelector('#search-form').requestSubmit()")
    wait_for("document.querySelectorAll('#search-results .result').length >= 3", 'search results')
    blur()


def open_dialog(button, dialog):
    open_chat()
    evaluate(f"document.querySelector('{button}').click()")
    wait_for(f"document.querySelector('{dialog}').open", dialog)


def scene_room_dialog(phone):
    open_dialog('#room-settings', '#room-dialog')
    wait_for("document.querySelectorAll('#member-list .member').length >= 4", 'the member list')


def scene_create_room(phone):
    open_dialog('#create-room', '#create-room-dialog')


def scene_directory(phone):
    open_dialog('#browse-rooms', '#directory-dialog')
    wait_for("document.querySelectorAll('#directory-list li').length >= 3", 'the directory')


def scene_dm(phone):
    open_dialog('#new-dm', '#dm-dialog')


def scene_notify(phone):
    open_dialog('#notify-open', '#settings-dialog')


def scene_switcher(phone):
    open_chat()
    key('k', 'KeyK', 75, modifiers=2)
    wait_for("document.querySelector('#switcher').open && document.querySelectorAll('#switcher-list [role=option]').length >= 5", 'the switcher')


def scene_drawer(phone):
    open_chat()
    evaluate("document.querySelector('#drawer-toggle').click()")
    wait_for("document.querySelector('#sidebar').classList.contains('is-open')", 'the drawer')
    time.sleep(0.3)


def scene_online(phone):
    open_chat()
    evaluate("document.querySelector('#online-toggle').click()")
    wait_for("document.querySelector('#online-panel').classList.contains('is-open')", 'the online list')


def scene_admin(phone):
    goto(f'{URL}/admin.html')
    wait_for("!document.querySelector('#admin-content').hidden && document.querySelectorAll('#users-body tr').length >= 4", 'the admin page')
    time.sleep(0.3)


def scene_signin(phone):
    call('Network.deleteCookies', name='hearth_session', url=URL + '/')
    goto(f'{URL}/')
    wait_for("!document.querySelector('#signin-view').hidden", 'the sign-in page')
    time.sleep(0.3)
    sign_in_browser()


SCENES = [('chat', scene_chat), ('search', scene_search), ('room-dialog', scene_room_dialog),
          ('create-room', scene_create_room), ('directory', scene_directory), ('dm-dialog', scene_dm),
          ('notify-dialog', scene_notify), ('switcher', scene_switcher), ('drawer', scene_drawer),
          ('online', scene_online), ('admin', scene_admin), ('signin', scene_signin)]
PHONE_ONLY = {'drawer', 'online'}

OVERFLOW_JS = r'''(() => {
  const W = document.documentElement.clientWidth, out = [];
  if (document.documentElement.scrollWidth > W + 1) out.push(`page is ${document.documentElement.scrollWidth}px wide`);
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\s+/).join('.') : '');
  for (const el of document.querySelectorAll('body *')) {
    const cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden' || el.closest('.visually-hidden, [inert], dialog:not([open])')) continue;
    if (cs.clipPath !== 'none' && cs.clipPath.includes('inset(50%')) continue;
    if (['auto', 'scroll'].includes(cs.overflowX) && el.scrollWidth > el.clientWidth + 1) out.push(`${name(el)} scrolls sideways (${el.scrollWidth} > ${el.clientWidth})`);
    const r = el.getBoundingClientRect();
    if (r.width && (r.right > W + 1 || r.left < -1) && !el.closest('.rooms:not(.is-open)')) {
      let clipped = false;
      for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
        const pr = p.getBoundingClientRect(), pcs = getComputedStyle(p);
        if (pcs.overflowX !== 'visible' && pr.right <= W + 1 && pr.left >= -1) { clipped = true; break; }
      }
      if (!clipped) out.push(`${name(el)} sticks out (${Math.round(r.left)}..${Math.round(r.right)})`);
    }
  }
  return out.slice(0, 8);
})()'''

axe_source = open(AXE_JS).read() if AXE_JS else ''
if SHOTS_DIR:
    os.makedirs(SHOTS_DIR, exist_ok=True)


def capture(path):
    data = call('Page.captureScreenshot', format='png')['data']
    with open(path, 'wb') as f:
        f.write(base64.b64decode(data))
    print(f'wrote {path}')


def check(label, signed_out=False):
    """axe-core, failed requests, CSP, console errors and overflow for the screen shown."""
    time.sleep(0.3)
    evaluate('1')  # collect pending events
    # Signed out, the page asks /api/me once and is told 401: that is how it learns it.
    problems = [e for e in events if not (signed_out and '401' in e and '/api/me' in e)]
    events.clear()
    problems += [f'CSP: {v}' for v in (evaluate('window.__csp || []') or [])]
    problems += evaluate(OVERFLOW_JS) or []
    violations = []
    if axe_source:
        if not evaluate("typeof axe !== 'undefined'"):
            evaluate(axe_source)
        result = evaluate("axe.run(document, { resultTypes: ['violations'] })"
                          ".then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact,"
                          " nodes: v.nodes.map((n) => n.target.join(' ') + ': ' + n.failureSummary.split('\\n').slice(1, 2).join(' ')) })))",
                          awaitPromise=True)
        violations = result or []
    n = sum(len(v['nodes']) for v in violations)
    audit.append((label, n, len(problems)))
    status = f'{n} axe violation(s)' if axe_source else 'axe not run'
    print(f'{label:40} {status}, {len(problems)} other problem(s)')
    for v in violations:
        print(f"    axe {v['id']} ({v['impact']}): {len(v['nodes'])} node(s)")
        for node in v['nodes'][:6]:
            print(f'      {node}')
    for p in problems:
        print(f'    {p}')


audit = []
sign_in_browser()
SIZES = [('desktop', 1280, 800, False), ('phone', 360, 740, True)]
for size, width, height, phone in SIZES:
    for theme in ('light', 'dark'):
        call('Emulation.setDeviceMetricsOverride', width=width, height=height, deviceScaleFactor=1, mobile=phone)
        call('Emulation.setEmulatedMedia', features=[
            {'name': 'prefers-color-scheme', 'value': theme},
            {'name': 'prefers-reduced-motion', 'value': 'reduce'},
        ])
        for name, scene in SCENES:
            if name in PHONE_ONLY and not phone:
                continue
            if not axe_source and not SHOTS_DIR:
                break
            scene(phone)
            label = f'{name} {width}x{height} {theme}'
            check(label, signed_out=(name == 'signin'))
            if SHOTS_DIR:
                capture(os.path.join(SHOTS_DIR, f'{name}-{size}-{theme}.png'))

# ---- 3. The README pictures ----------------------------------------------------------------
# Once the open room has been read, it opens at its newest messages like any day.
open_chat()
time.sleep(1)
README_SHOTS = [('screenshot.png', 1280, 800, 'light', scene_chat),
                ('screenshot-dark.png', 1280, 800, 'dark', scene_search),
                ('screenshot-phone.png', 360, 740, 'light', scene_chat)]
for file, width, height, theme, scene in README_SHOTS:
    call('Emulation.setDeviceMetricsOverride', width=width, height=height, deviceScaleFactor=1, mobile=width < 500)
    call('Emulation.setEmulatedMedia', features=[
        {'name': 'prefers-color-scheme', 'value': theme},
        {'name': 'prefers-reduced-motion', 'value': 'reduce'},
    ])
    scene(width < 500)
    if scene is scene_chat:
        show_typing()
        blur()
    time.sleep(0.4)
    capture(os.path.join(OUT, file))

# ---- 4. A newcomer signs up through the page, chats, joins a room and searches --------
call('Network.deleteCookies', name='hearth_session', url=URL + '/')
goto(f'{URL}/')
wait_for("!document.querySelector('#signin-view').hidden", 'the sign-in page')
evaluate(f"document.querySelector('#signin-username').value = 'newcomer';"
         f" document.querySelector('#signin-password').value = {json.dumps(PASSWORD)};"
         " document.querySelector('#signin-create').click()")
wait_for("document.querySelector('#conn').dataset.state === 'connected'", 'the newcomer to be signed in')
evaluate("const box = document.querySelector('#composer-input'); box.value = 'Hello everyone, just joined!';"
         " box.dispatchEvent(new Event('input')); document.querySelector('#composer').requestSubmit()")
wait_for("[...document.querySelectorAll('#messages .msg:not(.pending) .msg-body')].some((b) => b.textContent.includes('just joined'))", 'the message to be sent')
evaluate("document.querySelector('#browse-rooms').click()")
wait_for("!!document.querySelector('button[aria-label=\"Join #book-club\"]')", 'the directory')
evaluate("document.querySelector('button[aria-label=\"Join #book-club\"]').click()")
wait_for("document.querySelector('#room-name').textContent === 'book-club' && document.querySelectorAll('#messages .msg').length >= 1", 'book-club to open')
evaluate("document.querySelector('#search-input').value = 'joined'; document.querySelector('#search-form').requestSubmit()")
wait_for("document.querySelectorAll('#search-results .result').length >= 1", 'the search result')
check('sign up, chat, join, search', signed_out=True)

cdp.close()
for ws in sockets.values():
    ws.close()

if audit:
    bad = [a for a in audit if a[1] or a[2]]
    total = sum(a[1] for a in audit)
    print(f'checked {len(audit)} screens: {total} axe violation(s), {len(bad)} screen(s) with problems')
    if bad:
        sys.exit(1)
PY
