#!/usr/bin/env python3
"""Opens N keep-alive HTTP connections to 127.0.0.1:PORT at once, sends one
GET on each and checks that every one is answered 200; holds them all open;
then sends a second GET on every connection (they must all still be served)
and closes them with a reset (SO_LINGER 0, so no TIME_WAIT is left behind).

Prints progress on stderr and, on stdout, one line per phase:
    ready <n> <seconds>        every connection answered its first request
    again <n> <seconds>        every connection answered its second request
and, at the end, "errors <n>" with the reasons on stderr. Exits 1 if any
connection failed. While holding, it writes "holding" to the file given by
--signal-file (if any) so a wrapper can measure the server meanwhile, and
waits --hold seconds.
"""
import argparse
import errno
import resource
import selectors
import socket
import struct
import sys
import time

IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h; not exported by the socket module


def parse_response(buf):
    """(status, total length) of the response at the start of buf, or None
    while it is incomplete. Content-Length framing only (the backend's /)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1")
    lines = head.split("\r\n")
    try:
        status = int(lines[0].split(" ")[1])
    except (IndexError, ValueError):
        return (0, len(buf))
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if len(buf) < end + 4 + length:
        return None
    return (status, end + 4 + length)


def round_trip(socks, request, batch, timeout, label):
    """Sends `request` on every socket (at most `batch` outstanding) and
    reads one response from each. Returns the list of error strings."""
    sel = selectors.DefaultSelector()
    errors = []
    pending = list(range(len(socks)))
    pending.reverse()
    inflight = {}
    done = 0
    start = time.monotonic()
    deadline = start + timeout
    last_report = start
    while done + len(errors) < len(socks):
        while pending and len(inflight) < batch:
            i = pending.pop()
            s = socks[i]
            if s is None:
                errors.append("conn %d: not connected" % i)
                continue
            try:
                s.sendall(request)
            except OSError as e:
                errors.append("conn %d: send: %s" % (i, e))
                continue
            inflight[s] = [i, b""]
            sel.register(s, selectors.EVENT_READ)
        if time.monotonic() > deadline:
            errors.append("%s: %d responses missing at the deadline" % (label, len(inflight) + len(pending)))
            break
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            entry = inflight[s]
            try:
                data = s.recv(65536)
            except OSError as e:
                data = None
                errors.append("conn %d: recv: %s" % (entry[0], e))
            if data is not None and not data:
                errors.append("conn %d: closed by the peer" % entry[0])
            if not data:
                sel.unregister(s)
                del inflight[s]
                continue
            entry[1] += data
            parsed = parse_response(entry[1])
            if parsed is None:
                continue
            sel.unregister(s)
            del inflight[s]
            status, _ = parsed
            if status != 200:
                errors.append("conn %d: status %d" % (entry[0], status))
            else:
                done += 1
        now = time.monotonic()
        if now - last_report >= 2:
            print("%s: %d/%d answered" % (label, done, len(socks)), file=sys.stderr)
            last_report = now
    sel.close()
    return done, time.monotonic() - start, errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=19000)
    ap.add_argument("--batch", type=int, default=500, help="connects/requests outstanding at once")
    ap.add_argument("--hold", type=float, default=10.0, help="seconds to hold every connection open")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per phase")
    ap.add_argument("--path", default="/")
    ap.add_argument("--sources", type=int, default=20,
                    help="client addresses 127.0.0.1 .. 127.0.0.N to connect from")
    ap.add_argument("--signal-file", default="")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.count + 50:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < args.count + 50:
        sys.exit("many_conns: descriptor limit %d is too low for %d connections" % (soft, args.count))

    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % args.path).encode()
    errors = []
    socks = []
    # Connect in batches: a SYN flood of 19,000 at once would overflow the
    # listen backlog and be retried by the kernel after a second.
    start = time.monotonic()
    sel = selectors.DefaultSelector()
    connecting = 0
    opened = 0
    while opened < args.count or connecting:
        while opened < args.count and connecting < args.batch:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if args.sources > 1:
                # Past ~14,000 connections from one address the kernel's
                # search for a free ephemeral port slows every connect()
                # down to tens of milliseconds; spread over 127.0.0.x.
                s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind(("127.0.0.%d" % (1 + opened % args.sources), 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", args.port))
            sel.register(s, selectors.EVENT_WRITE, opened)
            socks.append(s)
            opened += 1
            connecting += 1
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            sel.unregister(s)
            connecting -= 1
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                errors.append("conn %d: connect: %s" % (key.data, errno.errorcode.get(err, err)))
                socks[key.data] = None
                s.close()
        if time.monotonic() - start > args.timeout:
            errors.append("connect phase: timed out")
            break
    sel.close()
    print("connected %d in %.1f s" % (opened, time.monotonic() - start), file=sys.stderr)
    for s in socks:
        if s is not None:
            s.setblocking(True)
            s.settimeout(args.timeout)

    done, took, errs = round_trip(socks, request, args.batch, args.timeout, "first")
    errors += errs
    print("ready %d %.1f" % (done, took), flush=True)

    if args.signal_file:
        with open(args.signal_file, "w") as f:
            f.write("holding\n")
    time.sleep(args.hold)

    done2, took2, errs = round_trip(socks, request, args.batch, args.timeout, "second")
    errors += errs
    print("again %d %.1f" % (done2, took2), flush=True)

    linger = struct.pack("ii", 1, 0)
    for s in socks:
        if s is None:
            continue
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        except OSError:
            pass
        s.close()

    print("errors %d" % len(errors), flush=True)
    for e in errors[:50]:
        print("  " + e, file=sys.stderr)
    if len(errors) > 50:
        print("  ... and %d more" % (len(errors) - 50), file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
