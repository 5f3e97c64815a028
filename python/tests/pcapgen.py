"""A tiny deterministic pcap writer for partition tests.

The bundled datasets all lie within one UTC hour (2024-03-04 09:00-09:53), so they
cannot show that rows land in the right `day=`/`hour=` partition. `write_spanning_pcap`
writes Ethernet/IPv4 TCP and UDP flows whose first packets sit on both sides of hour and
midnight boundaries (including a flow that starts before midnight and ends after it),
across three days.
"""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _ip(addr: str) -> bytes:
    return bytes(int(x) for x in addr.split("."))


def _frame(src: str, dst: str, proto: int, l4: bytes, ident: int) -> bytes:
    total = 20 + len(l4)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64, proto, 0,
                      _ip(src), _ip(dst))
    hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + hdr + l4


def _tcp(sport: int, dport: int, flags: int, seq: int = 1000, ack: int = 0) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


SYN, ACK, RST = 0x02, 0x10, 0x04


def spanning_packets() -> list[tuple[dt.datetime, bytes]]:
    """(capture time, frame) in capture order."""
    pkts: list[tuple[dt.datetime, bytes]] = []
    ident = 1

    def add(t: dt.datetime, src, dst, proto, l4):
        nonlocal ident
        pkts.append((t, _frame(src, dst, proto, l4, ident)))
        ident += 1

    starts = [
        dt.datetime(2024, 3, 4, 22, 59, 59, 999_999, tzinfo=UTC),  # last µs of hour 22
        dt.datetime(2024, 3, 4, 23, 0, 0, 0, tzinfo=UTC),          # first µs of hour 23
        dt.datetime(2024, 3, 4, 23, 30, 0, tzinfo=UTC),
        dt.datetime(2024, 3, 4, 23, 59, 59, 500_000, tzinfo=UTC),  # continues past midnight
        dt.datetime(2024, 3, 5, 0, 0, 0, 0, tzinfo=UTC),           # first µs of the next day
        dt.datetime(2024, 3, 5, 0, 0, 1, tzinfo=UTC),
        dt.datetime(2024, 3, 5, 1, 15, 0, tzinfo=UTC),
        dt.datetime(2024, 3, 5, 13, 45, 0, tzinfo=UTC),
        dt.datetime(2024, 3, 7, 8, 0, 0, tzinfo=UTC),              # a day is skipped
    ]
    for i, t0 in enumerate(starts):
        a = f"10.20.{i}.1"
        # a few SYN-only attempts to 445 on distinct hosts (S0 flows)
        for j in range(3):
            add(t0 + dt.timedelta(microseconds=j), a, f"10.30.{i}.{j + 1}", 6,
                _tcp(40000 + j, 445, SYN))
        # one rejected attempt (REJ)
        t = t0 + dt.timedelta(milliseconds=10)
        add(t, a, f"10.30.{i}.100", 6, _tcp(41000, 3389, SYN))
        add(t + dt.timedelta(milliseconds=1), f"10.30.{i}.100", a, 6,
            _tcp(3389, 41000, RST | ACK, seq=0, ack=1001))
        # one UDP exchange
        t = t0 + dt.timedelta(milliseconds=20)
        add(t, a, "10.40.0.53", 17, _udp(50000 + i, 1434, b"\x02"))
        add(t + dt.timedelta(milliseconds=2), "10.40.0.53", a, 17, _udp(1434, 50000 + i, b"ok"))
        if t0.hour == 23 and t0.minute == 59:
            # a later packet of the same 445 attempt after midnight: the flow's ts stays
            # on the previous day
            add(t0 + dt.timedelta(seconds=1), a, f"10.30.{i}.1", 6, _tcp(40000, 445, SYN))
    pkts.sort(key=lambda p: p[0])
    return pkts


def write_spanning_pcap(path: Path) -> list[tuple[dt.datetime, bytes]]:
    pkts = spanning_packets()
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, frame in pkts:
            us = (t - EPOCH) // dt.timedelta(microseconds=1)
            f.write(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(frame), len(frame)))
            f.write(frame)
    return pkts
