"""A client's receiver made to play on a lossy line: the resilient jitter buffer,
plus NACKs repeated until the packet arrives or the buffer gives it up."""

import asyncio
import time

from aiortc import RTCRtpReceiver
from aiortc.codecs import is_rtx

from media import adapter
from media.background import spawn
from media.jitter import ResilientJitterBuffer

NACK_INTERVAL = 0.05
# Repeat a NACK only after a round trip through a full rural queue (tbf's 300 ms
# latency): asking sooner only adds retransmissions to a line that is already full.
NACK_REPEAT_AFTER = 0.35
NACK_TRIES = 3


class ResilientReceiver:
    """Install right after setRemoteDescription, before media flows."""

    def __init__(self, receiver: RTCRtpReceiver, kind: str) -> None:
        self.receiver = receiver
        self.kind = kind
        self.buffer = ResilientJitterBuffer(kind, self._codec_of)
        self.buffer.overflow = adapter.replace_jitter_buffer(receiver, self.buffer)
        self._rtp = adapter.RtpTap(receiver, None)
        self._nacked: dict[int, tuple[float, int]] = {}
        self.nacks_sent = 0
        self._task: asyncio.Task[None] | None = None
        if kind == "video":
            self._task = spawn(self._retry_nacks(), "NACK retries")

    def _codec_of(self, payload_type: int) -> str:
        codec = adapter.receiver_codecs(self.receiver).get(payload_type)
        if codec is None or is_rtx(codec):
            return "vp8"
        return codec.mimeType.split("/")[1]

    async def _retry_nacks(self) -> None:
        while True:
            await asyncio.sleep(NACK_INTERVAL)
            ssrc = self._rtp.media_ssrc
            if ssrc is None:
                continue
            now = time.monotonic()
            due = []
            missing = self.buffer.missing()
            for seq in missing:
                last, tries = self._nacked.get(seq, (0.0, 0))
                if tries < NACK_TRIES and now - last >= NACK_REPEAT_AFTER:
                    self._nacked[seq] = (now, tries + 1)
                    due.append(seq)
            if len(self._nacked) > 4 * len(missing) + 64:
                waiting = set(missing)
                self._nacked = {s: v for s, v in self._nacked.items() if s in waiting}
            if due:
                self.nacks_sent += len(due)
                await adapter.send_nack(self.receiver, ssrc, due)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
