"""UDP generic segmentation offload (GSO): a frame's packets in one system call.

`sendto` is most of what forwarding a packet costs (docs/benchmarks.md, the fan-out
profile). Linux (4.18 and later) takes a run of equally sized datagrams in one
`sendmsg` with the `UDP_SEGMENT` option and splits it into separate datagrams
itself: the receiver sees the same packets as before. A frame's RTP packets are
equally sized but for the last (the packetizer fills each to the same size), so a
720p frame of five packets costs one system call instead of five.

Anything the kernel refuses (no GSO on the route, a full socket buffer) falls back
to one `sendto` a packet through the asyncio transport, which buffers: nothing is
lost that the plain path would have sent.
"""

import errno
import socket
import struct
from collections.abc import Callable

UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # linux/udp.h; Python 3.11 lacks the name
MAX_SEGMENTS = 64  # the kernel's UDP_MAX_SEGMENTS (64 before 6.x, 128 after)
MAX_BYTES = 60_000  # a GSO super-datagram must fit one IP datagram (65,507 bytes of payload)

_SEGMENT_SIZES = {size: struct.pack("=H", size) for size in range(1, 1501)}

_available = True  # cleared for the process on the first refusal that means "never"


def runs(packets: list[bytes]) -> list[tuple[int, int]]:
    """`packets` cut into runs that one GSO send can carry: (start, end) pairs, each
    run equally sized packets followed by at most one smaller one."""
    found = []
    start = 0
    count = len(packets)
    while start < count:
        size = len(packets[start])
        end = start + 1
        total = size
        while end < count and end - start < MAX_SEGMENTS:
            length = len(packets[end])
            if length > size or total + length > MAX_BYTES:
                break
            end += 1
            total += length
            if length < size:
                break
        found.append((start, end))
        start = end
    return found


class Sender:
    """Sends datagrams to `address` through `sock` directly, with GSO for a list of
    them, and through `fallback` (one datagram, the asyncio transport, which
    buffers) where the socket refuses. While `buffered()` says the fallback holds
    datagrams back, everything goes after them, through the fallback."""

    def __init__(
        self,
        sock: socket.socket | None,
        address: tuple[str, int],
        fallback: Callable[[bytes], None],
        buffered: Callable[[], int],
    ) -> None:
        self._sock = sock
        self._address = address
        self._fallback = fallback
        self._buffered = buffered

    def send(self, data: bytes) -> None:
        sock = self._sock
        if sock is None or self._buffered():
            self._fallback(data)
            return
        try:
            sock.sendto(data, self._address)
        except OSError:
            self._fallback(data)

    def send_many(self, packets: list[bytes]) -> None:
        global _available
        sock = self._sock
        fallback = self._fallback
        if sock is None or not _available or len(packets) < 2 or self._buffered():
            for packet in packets:
                fallback(packet)
            return
        for start, end in runs(packets):
            if end - start == 1:
                fallback(packets[start])
                continue
            part = packets[start:end]
            option = _SEGMENT_SIZES.get(len(part[0]))
            if option is None:
                for packet in part:
                    fallback(packet)
                continue
            try:
                sock.sendmsg(part, [(socket.SOL_UDP, UDP_SEGMENT, option)], 0, self._address)
            except OSError as error:
                if error.errno in (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
                    _available = False
                for packet in part:
                    fallback(packet)


def available() -> bool:
    """False once the kernel refused GSO in this process (then every send is plain)."""
    return _available
