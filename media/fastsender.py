"""The fast path: a down track that puts each subscriber's packets on the wire itself.

aiortc's sender path costs about 29 µs a forwarded packet (research file §2.2): it
re-packetizes every frame for every subscriber, builds an RtpPacket object per
packet, keeps a copy for retransmission, and sends through a chain of coroutines.
Here a frame is packetized once for all its subscribers (`Packetizer`), and each
subscriber's copy is its header template with the sequence number, timestamp,
marker and send time patched in (and, for VP8, its own picture id), protected and
handed straight to the UDP socket of the nominated ICE pair, inside the source's
fan-out loop: no task switch, no coroutine, no copy kept but the packet itself.

aiortc's sender stays in place for everything else: RTCP (sender reports, from
counters kept true here; receiver reports, RTT, REMB), PLI/FIR, and NACK, whose
retransmissions it asks of this class (with RTX when negotiated).

It also sends padding when asked (`pad`): padding-only packets on the RTX stream,
paced every 20 ms, that a receiver counts for its bandwidth estimate and then drops.
The layer controller probes a line with them before it moves up a layer.
"""

import asyncio
import random
import struct
import time
from collections.abc import Callable

import av
from aiortc import RTCRtpSender, clock
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media import adapter
from media.bitstream import VP8
from media.track import ForwardTrack

HISTORY = 512  # packets kept for retransmission: about 3 s at 720p
EARLY_FRAMES = 60  # video kept from its last keyframe until the sender starts (2 s at 30 fps)
PAD_BYTES = 255  # the most padding one RTP packet can carry (its last octet counts it)
PAD_EVERY = 0.02  # seconds between bursts of padding
PAD_BURST = 0.1  # at most this many seconds' worth of padding in one burst (after a stall)
_PADDING = bytes(PAD_BYTES - 1) + bytes((PAD_BYTES,))
_HEADER = struct.Struct("!HI")
_SEQUENCE = struct.Struct("!H")


class Packetizer:
    """A frame's RTP payloads, made once however many subscribers it goes to: the
    source hands the same packet to each subscriber in turn, so remembering the
    last one is enough."""

    def __init__(self) -> None:
        self._packet: av.Packet | None = None
        self._payloads: list[bytes] = []
        self._parts: list[tuple[bytes, bytes]] = []
        self.octets = 0  # the payload bytes of a copy of the frame
        self.made = 0
        # When the frame went out (NTP format): read once per frame, not once per
        # subscriber (it is the abs-send-time of every copy, and their SR time)
        self.ntp = 0
        self.abs_send_time = bytes(3)  # the same, as the 3-byte header extension

    def payloads(self, codec: str, packet: av.Packet) -> list[bytes]:
        if packet is not self._packet:
            self._make(codec, packet)
        return self._payloads

    def vp8_parts(self, packet: av.Packet) -> list[tuple[bytes, bytes]]:
        """The VP8 payloads split around their 2-byte picture id (each subscriber
        writes its own there): what comes before it, and after."""
        if packet is not self._packet:
            self._make(VP8, packet)
        return self._parts

    def _make(self, codec: str, packet: av.Packet) -> None:
        payloads = adapter.packetize(codec, bytes(packet))
        self._packet, self._payloads = packet, payloads
        self._parts = [(p[:2], p[4:]) for p in payloads] if codec == VP8 else []
        self.octets = sum(len(payload) for payload in payloads)
        self.ntp = ntp = clock.current_ntp_time()
        self.abs_send_time = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
        self.made += 1


_packetizers: dict[str, Packetizer] = {}


def packetizer(codec: str) -> Packetizer:
    found = _packetizers.get(codec)
    if found is None:
        found = _packetizers[codec] = Packetizer()
    return found


class FastSender(ForwardTrack):
    """Used where a `ForwardTrack` would be: sources and layer selectors `put()`
    frames into it. It is also the track of the aiortc sender it sends for, which
    then never gets a frame to send itself."""

    def __init__(
        self,
        kind: str,
        codec: str,
        on_keyframe_needed: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(kind, 2, on_keyframe_needed)
        self.codec = codec.lower()
        self._packetizer = packetizer(self.codec)
        self._wiring: adapter.SenderWiring | None = None
        self._sequence = random.randint(0, 32767)
        self._rtx_sequence = random.randint(0, 32767)
        self._origin = random.getrandbits(32)
        self._picture_id = random.randint(0, (1 << 15) - 1)
        self._history: list[bytes | None] = [None] * HISTORY
        self._sent_at = [0.0] * HISTORY  # when each video packet went out (monotonic)
        # Video that came before the sender started (DTLS takes a moment): the first
        # keyframe a new subscriber asked for and what followed it. Dropping it made
        # the request at start wait out the keyframe throttle, a second more.
        self._early: list[tuple[av.Packet, bool, int | None]] = []
        self.packets_sent = 0
        self.retransmitted = 0
        self.padding_sent = 0  # padding packets
        self._pad_bps = 0.0
        self._pad_from = 0.0  # padding ramps up from when it was asked for...
        self._pad_ramp = 0.0  # ...over this many seconds
        self._padder: asyncio.Task[None] | None = None
        self._timestamp = self._origin  # the last frame's RTP timestamp

    def bind(self, sender: RTCRtpSender) -> None:
        """Send for `sender` once it starts (its parameters are negotiated then)."""

        def started(codec: RTCRtpCodecParameters) -> None:
            self._wiring = adapter.SenderWiring(sender, codec)
            self._wiring.take_over(self._retransmit)
            early, self._early = self._early, []
            self.waiting_for_keyframe = self.kind == "video"
            for packet, keyframe, pts in early:
                self.put(packet, keyframe, pts)
            if self.waiting_for_keyframe and self._on_keyframe_needed is not None:
                self._on_keyframe_needed()

        adapter.on_sender_start(sender, started)

    def put(self, packet: av.Packet, keyframe: bool, pts: int | None = None) -> None:
        if self.readyState != "live":
            return
        if self.waiting_for_keyframe:
            if not keyframe:
                self.frames_dropped += 1
                return
        wiring = self._wiring
        if wiring is None and self.kind == "video":
            if keyframe:
                self._early = []
            if len(self._early) < EARLY_FRAMES:
                self._early.append((packet, keyframe, pts))
                self.waiting_for_keyframe = False
                return
            self._early = []
        route = wiring.route() if wiring is not None else None
        if wiring is None or route is None:
            self.frames_dropped += 1
            self.waiting_for_keyframe = self.kind == "video"
            return
        self.waiting_for_keyframe = False
        self.frames_in += 1
        packetizer = self._packetizer
        vp8 = self.codec == VP8
        video = self.kind == "video"
        if vp8:
            parts = packetizer.vp8_parts(packet)
            count = len(parts)
        else:
            payloads = packetizer.payloads(self.codec, packet)
            count = len(payloads)
        if not count:
            return
        ntp = packetizer.ntp
        if pts is None:
            pts = packet.pts or 0
        timestamp = (self._origin + pts) & 0xFFFFFFFF
        header = bytearray(wiring.header)
        at = wiring.abs_send_time_at
        if at is not None:
            header[at : at + 3] = packetizer.abs_send_time
        payload_type = wiring.payload_type
        sequence = self._sequence
        if count == 1 and not vp8:  # one packet (audio, always): no list, no loop
            header[1] = payload_type | 0x80
            _HEADER.pack_into(header, 2, sequence, timestamp)
            data = b"".join((header, payloads[0]))
            if video:
                self._history[sequence % HISTORY] = data
                self._sent_at[sequence % HISTORY] = time.monotonic()
            route.send(route.protect(data))
            sequence = (sequence + 1) & 0xFFFF
        else:
            header[1] = payload_type
            last = count - 1
            history = self._history
            pack = _HEADER.pack_into
            join = b"".join
            protect = route.protect
            out: list[bytes] = []
            first = sequence
            # HISTORY divides 65536: a sequence number's slot survives the wrap
            if vp8:
                picture_id = (0x8000 | self._picture_id).to_bytes(2, "big")
                self._picture_id = (self._picture_id + 1) & 0x7FFF
                for index, (head, tail) in enumerate(parts):
                    if index == last:  # the marker: the frame's last packet
                        header[1] = payload_type | 0x80
                    pack(header, 2, sequence, timestamp)
                    data = join((header, head, picture_id, tail))
                    history[sequence % HISTORY] = data
                    out.append(protect(data))
                    sequence = (sequence + 1) & 0xFFFF
            else:
                for index, payload in enumerate(payloads):
                    if index == last:
                        header[1] = payload_type | 0x80
                    pack(header, 2, sequence, timestamp)
                    data = join((header, payload))
                    if video:  # audio is not retransmitted (no NACK for Opus)
                        history[sequence % HISTORY] = data
                    out.append(protect(data))
                    sequence = (sequence + 1) & 0xFFFF
            if count == 1:
                route.send(out[0])
            else:
                route.send_many(out)
            if video:
                now = time.monotonic()
                sent_at = self._sent_at
                for n in range(count):
                    sent_at[(first + n) % HISTORY] = now
        self._sequence = sequence
        self._timestamp = timestamp
        self.packets_sent += count
        self.frames_out += 1
        wiring.account(count, packetizer.octets, timestamp, ntp)

    def retransmittable(self, sequence: int) -> bool:
        """Whether packet `sequence` is still in the retransmission history."""
        return self._stored(sequence) is not None

    def sent_at(self, sequence: int) -> float | None:
        """When video packet `sequence` went out (monotonic), if it is still known."""
        if self._stored(sequence) is None:
            return None
        return self._sent_at[sequence % HISTORY]

    def _stored(self, sequence: int) -> bytes | None:
        data = self._history[sequence % HISTORY]
        if data is None or _SEQUENCE.unpack_from(data, 2)[0] != sequence:
            return None
        return data

    async def _retransmit(self, sequence: int) -> None:
        """A NACKed packet, from history: wrapped in RTX when negotiated."""
        wiring = self._wiring
        data = self._stored(sequence)
        if wiring is None or data is None:
            return
        rtx_type = wiring.rtx_payload_type
        if rtx_type is not None:
            header = bytearray(wiring.rtx_header)
            size = len(header)
            header[1] = rtx_type | (data[1] & 0x80)
            header[2:4] = self._rtx_sequence.to_bytes(2, "big")
            header[4:8] = data[4:8]  # the original timestamp
            self._rtx_sequence = (self._rtx_sequence + 1) & 0xFFFF
            data = bytes(header) + data[2:4] + data[size:]
        route = wiring.route()
        if route is not None:
            route.send(route.protect(data))
            self.retransmitted += 1

    @property
    def can_pad(self) -> bool:
        """Padding goes on the RTX stream: only when RTX was negotiated."""
        wiring = self._wiring
        return wiring is not None and wiring.rtx_payload_type is not None

    def pad(self, bps: float, ramp: float = 0.0) -> None:
        """Send padding at `bps` (bits per second on the wire), reached in a straight
        line over `ramp` seconds from now; 0 stops."""
        self._pad_bps = bps if self.can_pad else 0.0
        self._pad_from = time.monotonic()
        self._pad_ramp = ramp
        if self._pad_bps > 0 and self._padder is None:
            self._padder = asyncio.get_running_loop().create_task(self._pad_loop())

    async def _pad_loop(self) -> None:
        loop = asyncio.get_running_loop()
        credit = 0.0
        last = loop.time()
        try:
            while self._pad_bps > 0 and self.readyState == "live":
                await asyncio.sleep(PAD_EVERY)
                now = loop.time()
                rate = self._pad_bps / 8
                if self._pad_ramp > 0:
                    rate *= min(1.0, (time.monotonic() - self._pad_from) / self._pad_ramp)
                credit = min(credit + rate * (now - last), rate * PAD_BURST)
                last = now
                wiring = self._wiring
                route = wiring.route() if wiring is not None else None
                if wiring is None or route is None:
                    continue
                packets = []
                while credit > 0:
                    data = route.protect(self._padding_packet(wiring))
                    packets.append(data)
                    credit -= len(data) + 28  # with the IP and UDP headers
                if packets:
                    route.send_many(packets)
                    self.padding_sent += len(packets)
        finally:
            self._padder = None

    def _padding_packet(self, wiring: adapter.SenderWiring) -> bytes:
        """A padding-only RTX packet: the RTX header (with the send time, which the
        receiver's estimate reads) and 255 octets of padding, no payload."""
        header = bytearray(wiring.rtx_header)
        header[0] |= 0x20  # padding
        header[1] = wiring.rtx_payload_type or 0
        header[2:4] = self._rtx_sequence.to_bytes(2, "big")
        header[4:8] = self._timestamp.to_bytes(4, "big")
        self._rtx_sequence = (self._rtx_sequence + 1) & 0xFFFF
        at = wiring.rtx_abs_send_time_at
        if at is not None:
            ntp = clock.current_ntp_time()
            header[at : at + 3] = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
        return bytes(header) + _PADDING

    async def recv(self) -> av.Packet:
        """aiortc's sender waits here for ever: this class sends by itself."""
        return await super().recv()

    @property
    def queued(self) -> int:
        return len(self._early)

    def new_layer(self) -> None:
        """Packets of the layer left behind are not worth resending: the subscriber
        starts again from the new layer's keyframe."""
        self._history = [None] * HISTORY

    def restart(self) -> None:
        self._early = []
        self.waiting_for_keyframe = self.kind == "video"
