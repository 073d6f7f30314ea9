"""What `zhuandi classroom` prints: status changes and progress lines on stdout, each
stamped with the seconds since start; errors on stderr."""

import sys
import time

from recorder.writer import PacketWriter
from server.client_media import MediaCounters


class Console:
    def __init__(self) -> None:
        self.status = "connecting"
        self.joined = False  # status changes are printed once `joined` has been
        self._started = time.monotonic()
        self._last_octets = 0
        self._last_time = self._started

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self._started:6.1f}s] {text}", flush=True)

    def error(self, text: str) -> None:
        print(f"zhuandi classroom: {text}", file=sys.stderr, flush=True)

    def set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            if self.joined:
                self.say(status)

    def progress(
        self,
        received: MediaCounters | None,
        sent: MediaCounters | None,
        writer: PacketWriter | None,
    ) -> None:
        """State, frames, resolution and bitrate since the last progress line."""
        now = time.monotonic()
        seconds = max(now - self._last_time, 1e-3)
        parts = [self.status]
        octets = 0
        for verb, counters in (("received", received), ("sent", sent)):
            if counters is None:
                continue
            size = counters.size
            if size is None and verb == "received" and writer is not None:
                size = writer.stats.video_size  # H.264: read from the recording
            shown = "{}x{}".format(*size) if size else "-"
            parts.append(
                f"{verb} video {counters.video_frames} frames {shown}, "
                f"audio {counters.audio_frames}"
            )
            octets += counters.octets
        parts.append(f"{(octets - self._last_octets) * 8 / 1000 / seconds:.0f} kbps")
        self._last_octets, self._last_time = octets, now
        if writer is not None:
            stats = writer.stats
            recorded = f"recorded {stats.video_frames}/{stats.audio_frames}"
            recorded += f" ({stats.dropped} dropped)" if stats.dropped else ""
            if writer.error is not None:
                recorded += f" · RECORDING FAILED: {writer.error}"
            parts.append(recorded)
        self.say(" · ".join(parts))

    def recorded(self, writer: PacketWriter) -> None:
        stats = writer.stats
        if writer.error is not None:
            self.error(f"the recording failed: {writer.error}")
        elif stats.started:
            self.say(
                f"recorded {stats.video_frames} video frames and {stats.audio_frames} audio "
                f"packets to {writer.path} ({stats.dropped} dropped)"
            )
        else:
            self.say("nothing arrived, so nothing was recorded")
