#!/usr/bin/env python3
"""udp-tool.py: send or count UDP datagrams (unicast or multicast, IPv4 or
IPv6) for mcast's tests: checks that the test LAN carries multicast, and
throws garbage or truncated datagrams at a session.

  udp-tool.py send DEST PORT [-i IFACE] [-n COUNT] [--size N | --random N | --hex HEX | --file F [--truncate N]] [--gap SECS]
  udp-tool.py recv GROUP PORT [-i IFACE] [--seconds S] [--count N] [--types]
  udp-tool.py forge KIND GROUP PORT [-i IFACE] [--seconds S] [--gap SECS] [--receivers K]

recv joins GROUP (when it is multicast) on IFACE and prints the number of
datagrams received, then "bytes=..." on a second line; it stops after
--seconds of silence once anything arrived, at --count, or after --max-seconds.
With --types it then prints "type=T N" for each value T of byte 4 (the
packet type of mcast's wire header) that N datagrams carried.
It prints "ready" on stderr once it has joined, so a test can wait for it.

forge plays a hostile host on the LAN that holds no session key: it joins
GROUP:PORT, learns the session from the first ANNOUNCE it hears (session id,
package id, name, geometry, pass: the announcement is authenticated, not
secret), then for --seconds (default 2), or until the session's END, sends,
--gap apart (default 0.01 s), datagrams laid out as mcast-protocol(7) says, of
KIND:
  overrun  HELLOs of K receivers (--receivers, default 1), then their NACKs
           without entries, each reporting more kernel overruns (cuts the rate)
  nack     HELLOs, then NACKs asking for every block of the package whole
  data     DATA of real blocks with random ESIs and random bytes
  end      END (all receivers complete), the same with a made-up 28-byte
           authentication trailer, and 200 random bytes to PORT+1
  hello    HELLOs only (receivers asking for the package, counted by mcast-sched)
  leave    CTRL LEAVE (the slow-receiver policy's "stop and use mcast-repair")
           to every receiver id heard in a HELLO on PORT+1 (ids are not
           secret: a HELLO's trailer authenticates, it does not hide)
It prints "forged=N" (datagrams sent) on stdout. With no ANNOUNCE within
--wait seconds (default 10) it exits 1."""

import argparse
import ipaddress
import os
import socket
import struct
import sys
import time


def ifindex(name):
    return socket.if_nametoindex(name) if name else 0


def iface_addr4(name):
    """The first IPv4 address of interface name (for IP_MULTICAST_IF/membership)."""
    import fcntl
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("256s", name.encode()[:15])
        return socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, req)[20:24])  # SIOCGIFADDR
    finally:
        s.close()


def open_socket(addr, port, iface, bind):
    ip = ipaddress.ip_address(addr)
    fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:  # a slow python receiver must not lose what a fast sender sends
        s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (root)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    if fam == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    else:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
    if bind:
        s.bind((addr if ip.is_multicast else "", port))
        if ip.is_multicast:
            if fam == socket.AF_INET:
                local = iface_addr4(iface) if iface else "0.0.0.0"
                mreq = socket.inet_aton(addr) + socket.inet_aton(local)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            else:
                mreq = socket.inet_pton(fam, addr) + struct.pack("@I", ifindex(iface))
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    elif iface and ip.is_multicast:
        if fam == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                         socket.inet_aton(iface_addr4(iface)))
        else:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF,
                         struct.pack("@I", ifindex(iface)))
    return s


def cmd_send(a):
    s = open_socket(a.dest, a.port, a.iface, bind=False)
    if a.hex is not None:
        payload = lambda: bytes.fromhex(a.hex)
    elif a.file:
        data = open(a.file, "rb").read()
        if a.truncate is not None:
            data = data[:a.truncate]
        payload = lambda: data
    elif a.random is not None:
        payload = lambda: os.urandom(a.random)
    else:
        payload = lambda: b"x" * a.size
    for i in range(a.count):
        s.sendto(payload(), (a.dest, a.port))
        if a.gap:
            time.sleep(a.gap)
    return 0


def cmd_recv(a):
    s = open_socket(a.group, a.port, a.iface, bind=True)
    print("ready", file=sys.stderr, flush=True)
    n = nbytes = 0
    types = {}
    start = time.monotonic()
    s.settimeout(0.2)
    last = None
    while True:
        now = time.monotonic()
        if now - start > a.max_seconds:
            break
        if last is not None and now - last > a.seconds:
            break
        if a.count and n >= a.count:
            break
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        n += 1
        nbytes += len(d)
        if a.types and len(d) > 4:
            types[d[4]] = types.get(d[4], 0) + 1
        last = time.monotonic()
    print(n)
    print("bytes=%d" % nbytes)
    for t in sorted(types):
        print("type=%d %d" % (t, types[t]))
    return 0


MAGIC = b"MCS" + bytes([2])


def hdr(ptype, session, flags=0, pass_=0):
    return MAGIC + struct.pack(">BBHI", ptype, flags, pass_ & 0xFFFF, session)


def learn(a):
    """The first ANNOUNCE on GROUP:PORT, as a dict (offsets from mcast-protocol(7))."""
    s = open_socket(a.group, a.port, a.iface, bind=True)
    print("ready", file=sys.stderr, flush=True)
    s.settimeout(0.2)
    end = time.monotonic() + a.wait
    while time.monotonic() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        if len(d) < 77 or d[:4] != MAGIC or d[4] != 1:
            continue
        ann = {"sock": s, "session": struct.unpack(">I", d[8:12])[0], "id": d[12:28]}
        (ann["payload"], ann["mlen"], ann["chunk"], ann["chunks"], ann["sym"], ann["kmax"],
         ann["pass"]) = struct.unpack(">QIIIHHI", d[28:56])
        ann["name"] = d[77:77 + d[76]]
        return ann
    return None


def blocks(ann):
    """Every chunk's first global block and its number of blocks."""
    per = ann["kmax"] * ann["sym"]
    bpc = -(-ann["chunk"] // per)
    out = []
    for c in range(ann["chunks"]):
        n = ann["chunk"] if c < ann["chunks"] - 1 else ann["payload"] - ann["chunk"] * (ann["chunks"] - 1)
        out.append((c * bpc, -(-n // per)))
    return out


def hello(ann, rid):
    name = ann["name"]
    return (hdr(16, 0) + struct.pack(">Q", rid) + ann["id"] + struct.pack(">IIB", 0, ann["chunks"], 32)
            + bytes([len(name)]) + name)


def nack(ann, rid, overruns, entries):
    body = struct.pack(">QIHH", rid, ann["pass"], len(entries), overruns & 0xFFFF)
    return hdr(17, ann["session"]) + body + b"".join(struct.pack(">IHH", *e) for e in entries)


def ended(ann, me):
    """True once the session's END came from another socket than ours (me: our source port)."""
    while True:
        try:
            d, frm = ann["sock"].recvfrom(65536)
        except (BlockingIOError, InterruptedError):
            return False
        if frm[1] == me:
            continue
        if len(d) >= 12 and d[:4] == MAGIC and d[4] == 4 and struct.unpack(">I", d[8:12])[0] == ann["session"]:
            return True
        if len(d) >= 56 and d[:4] == MAGIC and d[4] == 1:
            ann["pass"] = struct.unpack(">I", d[52:56])[0]


def cmd_forge(a):
    if a.kind == "leave":
        # joined before the session starts: the receivers' first HELLOs (to PORT+1) carry their ids, bytes 12-19
        fbs = open_socket(a.group, a.port + 1, a.iface, bind=True)
        fbs.setblocking(False)
    ann = learn(a)
    if ann is None:
        print("forge: no ANNOUNCE heard", file=sys.stderr)
        return 1
    out = open_socket(a.group, a.port, a.iface, bind=False)
    out.bind(("::" if out.family == socket.AF_INET6 else "", 0))
    me = out.getsockname()[1]  # our own datagrams come back (multicast loop) from this port
    data, fb = (a.group, a.port), (a.group, a.port + 1)
    rids = [int.from_bytes(os.urandom(8), "big") for _ in range(a.receivers)]
    blk = blocks(ann)
    n = 0
    heard = set()

    def send(pkt, to):
        nonlocal n
        out.sendto(pkt, to)
        n += 1

    if a.kind in ("overrun", "nack", "hello"):
        for r in rids:
            send(hello(ann, r), fb)
    end = time.monotonic() + a.seconds
    overruns = 0
    ann["sock"].setblocking(False)
    while time.monotonic() < end and not ended(ann, me):
        if a.kind == "overrun":
            overruns += 1000
            for r in rids:
                send(nack(ann, r, overruns, []), fb)
        elif a.kind == "nack":
            entries = [(first, run, 65535) for first, run in blk if run]
            for r in rids:
                for i in range(0, len(entries), 146):
                    send(nack(ann, r, 0, entries[i:i + 146]), fb)
        elif a.kind == "data":
            first, run = blk[int.from_bytes(os.urandom(4), "big") % len(blk)]
            if run:
                b = first + int.from_bytes(os.urandom(4), "big") % run
                esi = os.urandom(1)[0] % 255
                send(hdr(3, ann["session"], esi, ann["pass"]) + struct.pack(">I", b) + os.urandom(ann["sym"]), data)
        elif a.kind == "end":
            e = hdr(4, ann["session"]) + ann["id"] + b"\0"
            send(e, data)
            send(e + os.urandom(28), data)
            send(os.urandom(200), fb)
        elif a.kind == "hello":
            for r in rids:
                send(hello(ann, r), fb)
        elif a.kind == "leave":
            while True:
                try:
                    d = fbs.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                if len(d) >= 20 and d[:4] == MAGIC and d[4] in (16, 17):  # HELLO, NACK
                    heard.add(d[12:20])
            if heard:
                ids = sorted(heard)
                send(hdr(5, ann["session"]) + struct.pack(">H", len(ids))
                     + b"".join(r + bytes([2, 0, 0, 0]) for r in ids), data)
        if a.gap:
            time.sleep(a.gap)
    print("forged=%d" % n)
    if a.kind == "leave":
        print("receivers=%d" % len(heard))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    ps = sub.add_parser("send")
    ps.add_argument("dest")
    ps.add_argument("port", type=int)
    ps.add_argument("-i", "--iface")
    ps.add_argument("-n", "--count", type=int, default=1)
    ps.add_argument("--size", type=int, default=100)
    ps.add_argument("--random", type=int)
    ps.add_argument("--hex")
    ps.add_argument("--file")
    ps.add_argument("--truncate", type=int)
    ps.add_argument("--gap", type=float, default=0.0)
    pr = sub.add_parser("recv")
    pr.add_argument("group")
    pr.add_argument("port", type=int)
    pr.add_argument("-i", "--iface")
    pr.add_argument("--seconds", type=float, default=1.0)
    pr.add_argument("--count", type=int, default=0)
    pr.add_argument("--types", action="store_true")
    pr.add_argument("--max-seconds", type=float, default=30.0)
    pf = sub.add_parser("forge")
    pf.add_argument("kind", choices=["overrun", "nack", "data", "end", "hello", "leave"])
    pf.add_argument("group")
    pf.add_argument("port", type=int)
    pf.add_argument("-i", "--iface")
    pf.add_argument("--seconds", type=float, default=2.0)
    pf.add_argument("--gap", type=float, default=0.01)
    pf.add_argument("--receivers", type=int, default=1)
    pf.add_argument("--wait", type=float, default=10.0)
    a = p.parse_args()
    return {"send": cmd_send, "recv": cmd_recv, "forge": cmd_forge}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
