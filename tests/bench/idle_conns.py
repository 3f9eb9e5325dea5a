#!/usr/bin/env python3
"""Holds N idle keep-alive HTTP connections open, for measuring a proxy's
memory per idle client connection.

Opens --count connections to 127.0.0.1:--port (at most --batch at a time in
the connect/request phase), sends one GET on each and reads the whole
response, then prints "ready N" on stdout and keeps every connection open and
idle until SIGTERM/SIGINT or --hold seconds. Connections are then closed with
a reset (SO_LINGER 0) so that 10,000 sockets leave no TIME_WAIT behind to
starve the next run of ephemeral ports. Exits 1 (message on stderr) if any
connection fails or the whole set is not ready within --timeout seconds.
"""
import argparse
import resource
import selectors
import signal
import socket
import struct
import sys
import time


def response_complete(buf):
    """True once `buf` holds a whole response (Content-Length or chunked)."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    head = buf[:head_end].decode("latin-1").lower()
    body = buf[head_end + 4:]
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip() == "content-length":
            return len(body) >= int(value)
        if name.strip() == "transfer-encoding" and "chunked" in value:
            return body.endswith(b"0\r\n\r\n")
    return True  # no body framing: a bodiless response


def open_all(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % args.path).encode()
    sel = selectors.DefaultSelector()
    received = {}
    ready = []
    opened = 0
    deadline = time.monotonic() + args.timeout
    while len(ready) < args.count:
        while len(received) < args.batch and opened < args.count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", args.port))
            sel.register(s, selectors.EVENT_WRITE)
            received[s] = b""
            opened += 1
        if time.monotonic() > deadline:
            sys.exit("idle_conns: only %d of %d connections ready in time" % (len(ready), args.count))
        for key, mask in sel.select(timeout=1.0):
            s = key.fileobj
            if mask & selectors.EVENT_WRITE:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    sys.exit("idle_conns: connect failed: errno %d after %d ready" % (err, len(ready)))
                s.send(request)  # small enough to go out in one send
                sel.modify(s, selectors.EVENT_READ)
                continue
            data = s.recv(65536)
            if not data:
                sys.exit("idle_conns: connection closed by the server after %d ready" % len(ready))
            received[s] += data
            if response_complete(received[s]):
                sel.unregister(s)
                del received[s]
                ready.append(s)
    return ready


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--path", default="/")
    ap.add_argument("--timeout", type=float, default=120, help="seconds to get all ready")
    ap.add_argument("--hold", type=float, default=300, help="seconds to hold at most")
    args = ap.parse_args()

    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
    conns = open_all(args)
    print("ready %d" % len(conns), flush=True)
    signal.sigtimedwait([signal.SIGTERM, signal.SIGINT], args.hold)
    linger = struct.pack("ii", 1, 0)
    for s in conns:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.close()


if __name__ == "__main__":
    main()
