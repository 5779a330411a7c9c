#!/usr/bin/env bash
# Produce the README screenshots of the chat page from a running Hearth server.
#
#   scripts/screenshot.sh [SERVER_URL] [OUT_DIR]
#
# SERVER_URL defaults to http://127.0.0.1:12345 and OUT_DIR to docs/. Use a fresh
# server (empty database): the script registers four people, has them chat a
# little over the WebSocket, then opens the chat page as one of them in headless
# Chromium and saves:
#   OUT_DIR/screenshot.png        1280x800, light
#   OUT_DIR/screenshot-dark.png   1280x800, dark
#   OUT_DIR/screenshot-phone.png  360x740, light
#
# Needs: python3 (standard library only) and chromium (Debian: apt-get install chromium).
# A quick way to get a suitable server:
#   CHAT_SERVER__PORT=12345 CHAT_DATABASE__PATH=$(mktemp -d)/shot.db \
#     CHAT_AUTH__PBKDF2_ITERATIONS=1000 ./target/debug/hearth &
set -euo pipefail

URL="${1:-http://127.0.0.1:12345}"
OUT="${2:-$(cd "$(dirname "$0")/.." && pwd)/docs}"
CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"

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
  about:blank >/dev/null 2>&1 &
CHROME_PID=$!

python3 - "$URL" "$OUT" "$PROFILE" <<'PY'
import base64, json, os, socket, struct, sys, time, urllib.error, urllib.parse, urllib.request

URL, OUT, PROFILE = sys.argv[1].rstrip('/'), sys.argv[2], sys.argv[3]
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


def post(path, body):
    req = urllib.request.Request(URL + path, data=json.dumps(body).encode(), method='POST',
                                 headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req) as res:
            return res.status, res.headers.get_all('Set-Cookie') or []
    except urllib.error.HTTPError as e:
        return e.code, []


def session_for(username):
    status, cookies = post('/api/register', {'username': username, 'password': PASSWORD})
    if status == 409:
        status, cookies = post('/api/login', {'username': username, 'password': PASSWORD})
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


# ---- 1. A short conversation -----------------------------------------------------
PEOPLE = ['maya', 'theo', 'priya', 'sam']
VIEWER = 'sam'
CONVERSATION = [
    ('maya', 'Morning all! Is the cabin weekend still on for Saturday?'),
    ('theo', 'Yes! Booked it last night.'),
    ('theo', 'Check-in is from 3 pm. The key is in the lockbox by the door, code is in the notes.'),
    ('priya', 'Amazing. I can drive from the station: room for three more people and a cooler.'),
    ('sam', 'Count me in for a seat. I will bring the board games and the good coffee.'),
    ('maya', 'Perfect. Who is doing dinner on Saturday?'),
    ('priya', 'I will do my dal and rice, it scales well.\nSomeone else on dessert?'),
    ('theo', 'Dessert is mine. Thinking apple crumble with a lot of custard.'),
    ('sam', 'Then breakfast on Sunday is on me: pancakes for everyone.'),
    ('maya', 'This is going to be great. Leave around noon?'),
]

ws_base = ws_url()
cookies = {p: session_for(p) for p in PEOPLE}
sockets = {}
for p in PEOPLE:
    ws = WebSocket(f'{ws_base}?since=0', {'Cookie': f'hearth_session={cookies[p]}'})
    frame = ws.recv()
    if frame.get('type') != 'ready':
        raise SystemExit(f'expected ready, got {frame}')
    sockets[p] = ws

for i, (who, body) in enumerate(CONVERSATION):
    ws = sockets[who]
    nonce = f'shot-{int(time.time())}-{i}'
    ws.send({'type': 'send', 'room': 'general', 'body': body, 'nonce': nonce})
    while True:
        frame = ws.recv()
        if frame.get('type') == 'message' and frame.get('nonce') == nonce:
            break
        if frame.get('type') == 'error':
            raise SystemExit(f'server refused a message: {frame}')
    time.sleep(0.15)

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


def evaluate(expression):
    return call('Runtime.evaluate', expression=expression, returnByValue=True)['result'].get('value')


def wait_for(expression, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if evaluate(expression):
            return
        time.sleep(0.1)
    raise SystemExit(f'timed out waiting for {what}')


call('Network.enable')
call('Network.setCookie', name='hearth_session', value=cookies[VIEWER], url=URL + '/', httpOnly=True)
count = len(CONVERSATION)
READY = ("document.querySelector('#conn') && document.querySelector('#conn').dataset.state === 'connected'"
         f" && document.querySelectorAll('#messages .msg').length >= {count}")


def shot(name, width, height, dark=False, mobile=False):
    call('Emulation.setDeviceMetricsOverride', width=width, height=height, deviceScaleFactor=1, mobile=mobile)
    call('Emulation.setEmulatedMedia', features=[
        {'name': 'prefers-color-scheme', 'value': 'dark' if dark else 'light'},
        {'name': 'prefers-reduced-motion', 'value': 'reduce'},
    ])
    call('Page.navigate', url=URL + '/')
    wait_for(READY, 'the chat page')
    # Someone typing makes the picture feel alive.
    # (The server may throttle typing notices, so repeat until one shows.)
    for _ in range(40):
        sockets['priya'].send({'type': 'typing', 'room': 'general'})
        if evaluate("document.querySelector('#typing').textContent.includes('typing')"):
            break
        time.sleep(0.5)
    evaluate("document.activeElement && document.activeElement.blur()")
    time.sleep(0.4)
    data = call('Page.captureScreenshot', format='png')['data']
    path = os.path.join(OUT, name)
    with open(path, 'wb') as f:
        f.write(base64.b64decode(data))
    print(f'wrote {path}')


shot('screenshot.png', 1280, 800)
shot('screenshot-dark.png', 1280, 800, dark=True)
shot('screenshot-phone.png', 360, 740, mobile=True)

cdp.close()
for ws in sockets.values():
    ws.close()
PY
