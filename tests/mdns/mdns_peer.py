#!/usr/bin/env python3
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
"""An independent mDNS peer for the tests (stdlib only, its own DNS codec, not ours).

  mdns_peer.py query NAME TYPE --iface ADDR [--mode legacy|qu|qm] [--timeout S]
      asks like an RFC 6762 querier: legacy = from an ephemeral port (what upstream nodes do),
      qu = from port 5353 with the unicast-response bit, qm = from 5353 expecting multicast.
  mdns_peer.py listen --iface ADDR [--timeout S]
      prints every mDNS response heard on 224.0.0.251:5353 (announcements, goodbyes).
  mdns_peer.py garbage --iface ADDR --target IP
      sends malformed packets to the group and to IP:5353, from 5353 and from another port.
  mdns_peer.py respond --iface ADDR --instance I --host H --port P --addr IP [--timeout S]
      answers as hashicorp/mdns does for kairos-io/simple-mdns-server (docs/upstream.md §7.2): every
      answer unicast to the querier, id 0 unless the question had the QU bit, all records in the
      Answer section, TTL 120, no cache-flush bits, names compared exactly.

Output, one line each:
  packet from=IP:PORT to=multicast|unicast id=N flags=0xXXXX qd=N an=N ns=N ar=N
  question NAME TYPE CLASS
  rr SECTION NAME TYPE CLASS TTL RDATA   (CLASS in hex, cache-flush bit kept)
Exit 0 when something was heard (query, listen), 1 otherwise.
"""
import argparse
import random
import socket
import struct
import sys
import time

GROUP, PORT = "224.0.0.251", 5353
TYPES = {"A": 1, "PTR": 12, "TXT": 16, "AAAA": 28, "SRV": 33, "ANY": 255}
NAMES = {v: k for k, v in TYPES.items()}
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode()
        assert 0 < len(raw) < 64
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def decode_name(pkt, off):
    """Returns (name, offset after it in place). Pointers must go strictly back; at most 64."""
    labels, jumps, end, start = [], 0, None, off
    while True:
        if off >= len(pkt):
            raise ValueError("name runs off the packet")
        n = pkt[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(pkt):
                raise ValueError("truncated pointer")
            target = ((n & 0x3F) << 8) | pkt[off + 1]
            if target >= start or jumps > 64:
                raise ValueError("bad pointer")
            if end is None:
                end = off + 2
            off = start = target
            jumps += 1
            continue
        if n & 0xC0:
            raise ValueError("bad label type")
        if n == 0:
            return ".".join(labels) or ".", end if end is not None else off + 1
        labels.append(pkt[off + 1:off + 1 + n].decode("utf-8", "backslashreplace").replace(".", "\\."))
        off += 1 + n


def decode(pkt):
    if len(pkt) < 12:
        raise ValueError("short")
    hid, flags, qd, an, ns, ar = struct.unpack("!6H", pkt[:12])
    off, questions, records = 12, [], []
    for _ in range(qd):
        name, off = decode_name(pkt, off)
        qtype, qclass = struct.unpack("!HH", pkt[off:off + 4])
        off += 4
        questions.append((name, qtype, qclass))
    for i in range(an + ns + ar):
        section = "answer" if i < an else "authority" if i < an + ns else "additional"
        name, off = decode_name(pkt, off)
        rtype, rclass, ttl, rdlen = struct.unpack("!HHIH", pkt[off:off + 10])
        off += 10
        rdata = pkt[off:off + rdlen]
        if len(rdata) != rdlen:
            raise ValueError("rdata runs off the packet")
        if rtype == 1:
            text = socket.inet_ntop(socket.AF_INET, rdata)
        elif rtype == 28:
            text = socket.inet_ntop(socket.AF_INET6, rdata)
        elif rtype == 12:
            text = decode_name(pkt, off)[0]
        elif rtype == 33:
            prio, weight, port = struct.unpack("!HHH", rdata[:6])
            text = "%d %d %d %s" % (prio, weight, port, decode_name(pkt, off + 6)[0])
        elif rtype == 16:
            strings, k = [], 0
            while k < len(rdata):
                strings.append(rdata[k + 1:k + 1 + rdata[k]].decode("utf-8", "backslashreplace"))
                k += 1 + rdata[k]
            text = "|".join(strings)
        else:
            text = rdata.hex()
        records.append((section, name, rtype, rclass, ttl, text))
        off += rdlen
    return (hid, flags, qd, an, ns, ar), questions, records


def show(pkt, src, dst):
    try:
        head, questions, records = decode(pkt)
    except (ValueError, struct.error, IndexError) as e:
        print("undecodable from=%s:%d (%s)" % (src[0], src[1], e))
        return
    print("packet from=%s:%d to=%s id=%d flags=0x%04x qd=%d an=%d ns=%d ar=%d" %
          ((src[0], src[1], "multicast" if dst == GROUP else "unicast") + head))
    for name, qtype, qclass in questions:
        print("question %s %s 0x%04x" % (name, NAMES.get(qtype, qtype), qclass))
    for section, name, rtype, rclass, ttl, text in records:
        print("rr %s %s %s 0x%04x %d %s" % (section, name, NAMES.get(rtype, rtype), rclass, ttl, text))
    sys.stdout.flush()


def open_socket(iface, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    s.bind(("0.0.0.0", port))
    if port == PORT:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(GROUP) + socket.inet_aton(iface))
    return s


def receive(s, timeout, want):
    """Prints what arrives until timeout; want(pkt) says which packets count."""
    heard, deadline = 0, time.monotonic() + timeout
    while heard < 1000:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            pkt, anc, _flags, src = s.recvmsg(9000, socket.CMSG_SPACE(12))
        except socket.timeout:
            break
        dst = None
        for level, kind, data in anc:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
                dst = socket.inet_ntoa(data[8:12])
        if want(pkt):
            show(pkt, src, dst)
            heard += 1
    return heard


def is_response(pkt):
    return len(pkt) >= 12 and pkt[2] & 0x80


def query(a):
    qid = random.randint(1, 0xFFFF) if a.mode == "legacy" else 0
    qclass = 1 | (0x8000 if a.mode == "qu" else 0)
    pkt = struct.pack("!6H", qid, 0, 1, 0, 0, 0) + encode_name(a.name) + struct.pack("!HH", TYPES[a.type], qclass)
    s = open_socket(a.iface, 0 if a.mode == "legacy" else PORT)
    s.sendto(pkt, (GROUP, PORT))
    n = receive(s, a.timeout, is_response)
    return 0 if n else 1


def listen(a):
    s = open_socket(a.iface, PORT)
    return 0 if receive(s, a.timeout, is_response) else 1


def garbage_packets():
    q = struct.pack("!6H", 0, 0, 1, 0, 0, 0)
    yield b""
    yield b"\x00" * 5
    yield q + b"\xc0\x0c\x00\x0c\x00\x01"                      # pointer to itself
    yield q + b"\x01a\xc0\x0c\x00\x0c\x00\x01"                 # pointer loop through a label
    yield q + b"\xc0\x20\x00\x0c\x00\x01" + b"\x00" * 30       # pointer forwards
    yield q + b"\x3f" + b"a" * 10                              # label runs off the packet
    yield q + b"\x41a\x00\x00\x01\x00\x01"                     # reserved label type
    yield struct.pack("!6H", 0, 0, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF) + encode_name("_kcrypt._tcp.local") + b"\x00\x0c\x00\x01"
    yield q[:4] + b"\x00\x01\x00\x01\x00\x00" + encode_name("_kcrypt._tcp.local") + b"\x00\x0c\x00\x01" + \
        b"\xc0\x0c\x00\x0c\x00\x01\x00\x00\x00\x78\xff\xff"   # known answer whose RDATA overruns
    yield q + (b"\x3f" + b"b" * 63) * 5 + b"\x00\x00\x01\x00\x01"  # name over 255 bytes
    yield struct.pack("!6H", 0, 0x7800, 1, 0, 0, 0) + encode_name("kms.local") + b"\x00\x01\x00\x01"  # opcode 15
    rnd = random.Random(1)
    for _ in range(200):
        yield bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 600)))
    yield bytes(9000)


def garbage(a):
    out = open_socket(a.iface, PORT)
    other = open_socket(a.iface, 0)
    count = 0
    for pkt in garbage_packets():
        for s in (out, other):
            for dest in ((GROUP, PORT), (a.target, PORT)):
                try:
                    s.sendto(pkt, dest)
                    count += 1
                except OSError:
                    pass
        time.sleep(0.001)
    print("sent %d malformed packets" % count)
    return 0


def rr(name, rtype, rdata):
    return encode_name(name) + struct.pack("!HHIH", rtype, 1, 120, len(rdata)) + rdata


def respond(a):
    """hashicorp/mdns zone.go + server.go, for one service."""
    service = "_kcrypt._tcp.local."
    instance = "%s.%s" % (a.instance, service)
    host = a.host.rstrip(".") + "."
    srv = rr(instance, 33, struct.pack("!HHH", 10, 1, a.port) + encode_name(host))
    addr = rr(host, 1, socket.inet_aton(a.addr))
    txt_value = ("An instance of _kcrypt._tcp").encode()
    txt = rr(instance, 16, bytes([len(txt_value)]) + txt_value)
    zone = {
        ("_services._dns-sd._udp.local.", 12): [rr("_services._dns-sd._udp.local.", 12, encode_name(service))],
        (service, 12): [rr(service, 12, encode_name(instance)), srv, addr, txt],
        (instance, 33): [srv, addr], (instance, 16): [txt], (instance, 255): [srv, addr, txt],
        (host, 1): [addr],
    }
    s = open_socket(a.iface, PORT)
    deadline = time.monotonic() + a.timeout
    print("responding", flush=True)
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            pkt, src = s.recvfrom(9000)
        except socket.timeout:
            break
        try:
            (qid, flags, *_), questions, _ = decode(pkt)
        except (ValueError, struct.error, IndexError):
            continue
        if flags & 0x8000:
            continue
        answers = {False: [], True: []}
        for name, qtype, qclass in questions:
            answers[bool(qclass & 0x8000)] += zone.get((name + ".", qtype), [])
        for unicast in (False, True):
            if answers[unicast]:
                head = struct.pack("!6H", qid if unicast else 0, 0x8400, 0, len(answers[unicast]), 0, 0)
                s.sendto(head + b"".join(answers[unicast]), src)
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("query")
    q.add_argument("name")
    q.add_argument("type", choices=sorted(TYPES))
    q.add_argument("--mode", choices=["legacy", "qu", "qm"], default="legacy")
    r = sub.add_parser("respond")
    r.add_argument("--instance", required=True)
    r.add_argument("--host", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--addr", required=True)
    for sp in (q, sub.add_parser("listen"), sub.add_parser("garbage"), r):
        sp.add_argument("--iface", required=True, help="this side's IPv4 address")
        sp.add_argument("--timeout", type=float, default=2.0)
        if sp.prog.endswith("garbage"):
            sp.add_argument("--target", required=True)
    a = p.parse_args()
    return {"query": query, "listen": listen, "garbage": garbage, "respond": respond}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
