"""A receive-side jitter buffer that never stalls for seconds on a lossy line.

aiortc's receiver NACKs a gap once, and its video jitter buffer releases frames only
in sequence: a packet lost twice holds every later frame until 512 packets have
piled up behind it (4 s at 720p, 8 s at 360p; research file §3.3). This buffer, for
a classroom client's own receivers:

- releases a frame as soon as all its packets are in (the marker bit closes it),
  without waiting for the next frame;
- keeps asking for missing packets (see `missing()`; the caller re-sends NACKs on
  a timer) for up to `max_wait` seconds;
- then gives the frame up: video skips to the next keyframe and asks for one
  (PLI); audio just skips the lost packet.

Same interface as aiortc's JitterBuffer: add(packet) -> (pli_flag, frame or None).
When several frames complete at once (a retransmission filled a gap), the last is
returned and the earlier ones go first to `overflow`, a callable that hands them on.
"""

import time
from collections.abc import Callable

from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

from media.bitstream import h264_nal_types

MAX_PACKETS = 2048


class ResilientJitterBuffer:
    def __init__(
        self,
        kind: str,
        codec: str | Callable[[int], str] = "vp8",
        *,
        max_wait: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`codec` is a codec name, or a function from payload type to codec name
        (codecs are only known once the connection starts)."""
        self.kind = kind
        self._codec = codec
        self.max_wait = max_wait if kind == "video" else min(max_wait, 0.1)
        self._clock = clock
        self._packets: dict[int, RtpPacket] = {}
        self._next: int | None = None  # extended sequence number of the next packet to release
        self._highest: int | None = None
        self._gap_since: float | None = None
        self._need_keyframe = kind == "video"
        self.overflow: Callable[[JitterFrame], None] | None = None
        self.frames_out = 0
        self.frames_skipped = 0
        self.gaps_given_up = 0

    # aiortc's receiver reads this for its stats
    @property
    def capacity(self) -> int:
        return MAX_PACKETS

    def _extend(self, sequence_number: int) -> int:
        if self._highest is None:
            return sequence_number
        base = self._highest & ~0xFFFF
        candidates = (
            base - 0x10000 + sequence_number,
            base + sequence_number,
            base + 0x10000 + sequence_number,
        )
        return min(candidates, key=lambda c: abs(c - self._highest))  # type: ignore[operator]

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        ext = self._extend(packet.sequence_number)
        if self._next is None:
            self._next = ext
        if ext < self._next or ext in self._packets:
            return False, None  # late or duplicate
        self._packets[ext] = packet
        if self._highest is None or ext > self._highest:
            self._highest = ext
        if len(self._packets) > MAX_PACKETS:
            self._give_up()
        return self._release()

    def missing(self) -> list[int]:
        """Sequence numbers (16-bit) still awaited in front of the newest packet."""
        if self._next is None or self._highest is None:
            return []
        start = self._next
        return [
            ext & 0xFFFF
            for ext in range(start, min(self._highest, start + 256))
            if ext not in self._packets
        ]

    def _release(self) -> tuple[bool, JitterFrame | None]:
        pli = False
        frames: list[JitterFrame] = []
        while True:
            if self._need_keyframe and self.kind == "video":
                if not self._seek_keyframe():
                    break
            frame, complete = self._take_frame()
            if frame is not None:
                frames.append(frame)
                self._gap_since = None
                continue
            if complete or self._highest is None or self._next is None:
                break
            # the next frame is incomplete: wait for retransmission, then give up
            if self._highest <= self._next:
                break
            if self.kind == "video" and self._skip_to_complete_keyframe():
                continue  # a whole keyframe is already here: nothing before it matters
            now = self._clock()
            if self._gap_since is None:
                self._gap_since = now
                break
            if now - self._gap_since < self.max_wait:
                break
            self._give_up()
            pli = pli or self.kind == "video"
        if not frames:
            return pli, None
        self.frames_out += len(frames)
        # The caller queues the returned frame for decoding after this returns, so
        # the earlier frames go first, through `overflow`, to keep the order.
        for extra in frames[:-1]:
            if self.overflow is not None:
                self.overflow(extra)
        return pli, frames[-1]

    def _take_frame(self) -> tuple[JitterFrame | None, bool]:
        """The frame starting at `_next`, if all its packets are in.

        Returns (frame, False) when released; (None, True) when nothing waits to be
        released; (None, False) when a packet of the next frame is missing."""
        assert self._next is not None
        first = self._packets.get(self._next)
        if first is None:
            return None, not any(ext > self._next for ext in self._packets)
        parts = [first]
        ext = self._next
        if self.kind == "video":
            while not parts[-1].marker:
                ext += 1
                packet = self._packets.get(ext)
                if packet is None or packet.timestamp != first.timestamp:
                    if packet is not None:  # the marker packet was lost: the frame ends here
                        ext -= 1
                        break
                    return None, False
                parts.append(packet)
        for seq in range(self._next, ext + 1):
            self._packets.pop(seq, None)
        self._next = ext + 1
        data = b"".join(p._data for p in parts)  # type: ignore[attr-defined]
        return JitterFrame(data=data, timestamp=first.timestamp), False

    def _give_up(self) -> None:
        """Drop the frame that waits for a lost packet; video then needs a keyframe."""
        self.gaps_given_up += 1
        self._gap_since = None
        assert self._next is not None
        if self.kind == "video":
            # Drop the frame that starts here, even when it is a keyframe: the next
            # search must not find the same broken keyframe again.
            for ext in [e for e in self._packets if e <= self._next]:
                del self._packets[ext]
            self._next += 1
            self.frames_skipped += 1
            self._need_keyframe = True
            self._seek_keyframe()
        else:
            later = [ext for ext in self._packets if ext > self._next]
            self._next = min(later) if later else self._next + 1
            self.frames_skipped += 1

    def _skip_to_complete_keyframe(self) -> bool:
        """Jump over a gap to a later keyframe that is complete (a layer switch sends
        one right after packets lost on the old layer): no need to wait for what is
        missing before it."""
        assert self._next is not None
        for ext in sorted(e for e in self._packets if e > self._next):
            packet = self._packets[ext]
            if not self._starts_keyframe(packet):
                continue
            end = ext
            while not self._packets[end].marker:
                following = self._packets.get(end + 1)
                if following is None or following.timestamp != packet.timestamp:
                    return False  # that keyframe is not complete yet
                end += 1
            for old in [e for e in self._packets if e < ext]:
                del self._packets[old]
                self.frames_skipped += 1
            self._next = ext
            self._gap_since = None
            return True
        return False

    def _seek_keyframe(self) -> bool:
        """Move `_next` to the first packet of a buffered keyframe, dropping what is in
        front of it. Returns whether one was found."""
        for ext in sorted(self._packets):
            if self._starts_keyframe(self._packets[ext]):
                for old in [e for e in self._packets if e < ext]:
                    del self._packets[old]
                    self.frames_skipped += 1
                self._next = ext
                self._need_keyframe = False
                return True
        return False

    def _codec_name(self, packet: RtpPacket) -> str:
        codec = self._codec
        return (codec if isinstance(codec, str) else codec(packet.payload_type)).lower()

    def _starts_keyframe(self, packet: RtpPacket) -> bool:
        data: bytes = getattr(packet, "_data", b"")
        codec = self._codec_name(packet)
        if codec == "vp8":
            try:
                descriptor, rest = VpxPayloadDescriptor.parse(packet.payload)
            except ValueError:
                return False
            return bool(
                descriptor.partition_start
                and descriptor.partition_id == 0
                and rest
                and rest[0] & 0x01 == 0
            )
        if codec == "h264":
            types = h264_nal_types(data)
            return 7 in types or 5 in types
        return True
