#!/usr/bin/env python3
# Sends RATE chat messages/s (10 per ms-batch) to ws://127.0.0.1:PORT/ for SECONDS; drains replies.
import base64, os, socket, struct, sys, threading, time
port, rate, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
assert b" 101 " in buf.split(b"\r\n")[0], buf
got = [0]
def drain():
    while True:
        d = s.recv(1 << 16)
        if not d: return
        got[0] += len(d)
threading.Thread(target=drain, daemon=True).start()
def frame(payload):
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked
per_batch = max(1, rate // 1000)
sent, start = 0, time.time()
while time.time() - start < seconds:
    batch = b"".join(frame(('{"name":"load","text":"m%d"}' % (sent + i)).encode()) for i in range(per_batch))
    s.sendall(batch)
    sent += per_batch
    target = start + sent / rate
    delay = target - time.time()
    if delay > 0: time.sleep(delay)
print(f"sent {sent} in {time.time()-start:.1f}s ({sent/(time.time()-start):.0f}/s), received {got[0]} bytes")
