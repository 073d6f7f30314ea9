"""What `zhuandi classroom` prints: status changes and progress lines on stdout, each
stamped with the seconds since start; errors on stderr."""

import sys
import time

from recorder.writer import PacketWriter
from server.client_media import MediaCounters


class Console:
    def __init__(self, publishing: bool) -> None:
        self.publishing = publishing
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

    def progress(self, counters: MediaCounters, writer: PacketWriter | None) -> None:
        """State, frames, resolution and bitrate since the last progress line."""
        now = time.monotonic()
        kbps = (counters.octets - self._last_octets) * 8 / 1000 / max(now - self._last_time, 1e-3)
        self._last_octets, self._last_time = counters.octets, now
        size_known = counters.size or (writer.stats.video_size if writer else None)
        size = "{}x{}".format(*size_known) if size_known else "-"
        verb = "sent" if self.publishing else "received"
        line = (
            f"{self.status} · {verb} video {counters.video_frames} frames {size}, "
            f"audio {counters.audio_frames} · {kbps:.0f} kbps"
        )
        if writer is not None:
            stats = writer.stats
            line += f" · recorded {stats.video_frames}/{stats.audio_frames}"
            line += f" ({stats.dropped} dropped)" if stats.dropped else ""
            if writer.error is not None:
                line += f" · RECORDING FAILED: {writer.error}"
        self.say(line)

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
