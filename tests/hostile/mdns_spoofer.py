#!/usr/bin/env python3
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
"""A hostile mDNS peer for tests/hostile/test_mdns_spoof.sh (stdlib only, its own DNS encoder).

  mdns_spoofer.py --iface ADDR --onlink ADDR --offlink ADDR [--timeout S] [--rounds N]

Listens on 224.0.0.251:5353 (sharing the port with the real responder) for queries about
kms.local. For each of the first N queries heard, sends at once and again 0.3 s later, to the
querier's address and port and to the group:
  offlink  from OFFLINK:5353, A kms.local -> 10.199.0.61 (right id, right name)
  port     from ONLINK:5354, A kms.local -> 10.199.0.62 (right id, right name)
  name     from ONLINK:5353, an answer about _other._tcp.local with A kms.local -> 10.199.0.63 as
           an additional record (right id)
  id       from ONLINK:5353 to the querier only, A kms.local -> 10.199.0.64 with a wrong, non-zero id
  goodbye  from ONLINK:5353 and from OFFLINK:5353, A kms.local -> the real responder's address
           with TTL 0 and the cache-flush bit (right id)
Prints "ready" once listening and "spoofed QUERIER:PORT id=N" for each query answered.
"""
import argparse
import socket
import struct
import time

GROUP, PORT = "224.0.0.251", 5353


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def read_name(pkt, off):
    labels, jumps = [], 0
    while True:
        n = pkt[off]
        if n & 0xC0 == 0xC0:
            off = ((n & 0x3F) << 8) | pkt[off + 1]
            jumps += 1
            if jumps > 16:
                raise ValueError("loop")
            continue
        if n == 0:
            return ".".join(labels).lower()
        labels.append(pkt[off + 1:off + 1 + n].decode("latin-1"))
        off += 1 + n


def first_question_name(pkt):
    return read_name(pkt, 12)


def rr(name, rtype, rclass, ttl, rdata):
    return encode_name(name) + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def response(qid, question, answers, additional=()):
    head = struct.pack("!6H", qid, 0x8400, 1 if question else 0, len(answers), 0, len(additional))
    return head + question + b"".join(answers) + b"".join(additional)


def sock_from(addr, port, iface):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    s.bind((addr, port))
    return s


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iface", required=True)
    p.add_argument("--onlink", required=True)
    p.add_argument("--offlink", required=True)
    p.add_argument("--real", required=True, help="the real responder's address (goodbyes for it)")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--rounds", type=int, default=4)
    a = p.parse_args()

    listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listen.bind(("0.0.0.0", PORT))
    listen.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(GROUP) + socket.inet_aton(a.iface))
    off = sock_from(a.offlink, PORT, a.iface)
    on = sock_from(a.onlink, PORT, a.iface)
    on_port = sock_from(a.onlink, PORT + 1, a.iface)
    print("ready", flush=True)

    deadline, rounds = time.monotonic() + a.timeout, 0
    while rounds < a.rounds and time.monotonic() < deadline:
        listen.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            pkt, src = listen.recvfrom(9000)
        except socket.timeout:
            break
        if len(pkt) < 12 or pkt[2] & 0x80 or src[1] == PORT:
            continue  # a response, or not a legacy query (ours come from an ephemeral port)
        qid = struct.unpack("!H", pkt[:2])[0]
        try:
            if first_question_name(pkt) not in ("_kcrypt._tcp.local", "kms.local"):
                continue
        except (ValueError, IndexError):
            continue
        rounds += 1
        question = encode_name("kms.local") + struct.pack("!HH", 1, 1)

        def a_rec(last, ttl=120, rclass=1):
            return rr("kms.local", 1, rclass, ttl, socket.inet_aton("10.199.0.%d" % last))

        goodbye = rr("kms.local", 1, 0x8001, 0, socket.inet_aton(a.real))
        other = rr("_other._tcp.local", 12, 1, 120, encode_name("y._other._tcp.local"))
        sends = [
            (off, response(qid, question, [a_rec(61)]), True),
            (on_port, response(qid, question, [a_rec(62)]), True),
            (on, response(qid, b"", [other], [a_rec(63)]), True),
            (on, response(qid ^ 0x5555 or 1, question, [a_rec(64)]), False),
            (on, response(qid, question, [goodbye]), True),
            (off, response(qid, question, [goodbye]), True),
        ]
        for wave in range(2):
            for s, msg, group_too in sends:
                s.sendto(msg, src)
                if group_too:
                    s.sendto(msg, (GROUP, PORT))
            if wave == 0:
                time.sleep(0.3)
        print("spoofed %s:%d id=%d" % (src[0], src[1], qid), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
