#!/usr/bin/env python3
"""udp-tool.py: send or count UDP datagrams (unicast or multicast, IPv4 or
IPv6) for mcast's tests: checks that the test LAN carries multicast, and
throws garbage or truncated datagrams at a session.

  udp-tool.py send DEST PORT [-i IFACE] [-n COUNT] [--size N | --random N | --hex HEX | --file F [--truncate N]] [--gap SECS]
  udp-tool.py recv GROUP PORT [-i IFACE] [--seconds S] [--count N] [--types]

recv joins GROUP (when it is multicast) on IFACE and prints the number of
datagrams received, then "bytes=..." on a second line; it stops after
--seconds of silence once anything arrived, at --count, or after --max-seconds.
With --types it then prints "type=T N" for each value T of byte 4 (the
packet type of mcast's wire header) that N datagrams carried.
It prints "ready" on stderr once it has joined, so a test can wait for it."""

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
    a = p.parse_args()
    return cmd_send(a) if a.cmd == "send" else cmd_recv(a)


if __name__ == "__main__":
    sys.exit(main())
