"""A media file played again and again, for a scripted teacher (`--publish FILE`).

aiortc's `MediaPlayer(loop=True)` does not loop with PyAV 18: at the end of the
file PyAV raises `av.EOFError`, not `StopIteration`, so the player ends its tracks.
Its timestamps would also start again from zero on each pass, which the encoder
and the receiver take for a clock going backwards. So each pass here is a fresh
`MediaPlayer` (which decodes, resamples and paces in real time), and the tracks
carry on from one pass to the next with timestamps that keep rising.
"""

import logging
import os

import av
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

logger = logging.getLogger(__name__)

KINDS = ("audio", "video")


class LoopingPlayer:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        first = MediaPlayer(self.path)  # raises for a missing or unreadable file
        self._passes: dict[int, MediaPlayer] = {0: first}
        self._released: dict[int, set[str]] = {0: set()}
        self._kinds = [kind for kind in KINDS if _track(first, kind) is not None]
        self.audio = LoopTrack(self, "audio") if "audio" in self._kinds else None
        self.video = LoopTrack(self, "video") if "video" in self._kinds else None
        self.passes = 1

    def source(self, number: int, kind: str) -> MediaStreamTrack:
        """The `kind` track of pass `number`, opening the file again when needed."""
        player = self._passes.get(number)
        if player is None:
            player = MediaPlayer(self.path)
            self._passes[number] = player
            self._released[number] = set()
            self.passes += 1
        track = _track(player, kind)
        if track is None:
            raise MediaStreamError
        return track

    def release(self, number: int, kind: str) -> None:
        """The `kind` track is done with pass `number`; close it once all are."""
        player = self._passes.get(number)
        if player is None:
            return
        track = _track(player, kind)
        if track is not None:
            track.stop()
        self._released[number].add(kind)
        if self._released[number] >= set(self._kinds):
            del self._passes[number]
            del self._released[number]

    def stop(self) -> None:
        for track in (self.audio, self.video):
            if track is not None:
                track.stop()
        for number in list(self._passes):
            for kind in self._kinds:
                self.release(number, kind)


class LoopTrack(MediaStreamTrack):
    """One kind of the looping file, with timestamps that never go back."""

    def __init__(self, player: LoopingPlayer, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._player = player
        self._pass = 0
        self._offset = 0  # added to this pass's pts, in the frame's time base
        self._next_pts = 0  # where the next pass starts
        self._last_pts: int | None = None
        self.frames = 0
        self.size: tuple[int, int] | None = None

    async def recv(self) -> av.VideoFrame | av.AudioFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            source = self._player.source(self._pass, self.kind)
            try:
                frame = await source.recv()
            except MediaStreamError:
                if self.readyState != "live":
                    raise
                self._player.release(self._pass, self.kind)
                self._pass += 1
                self._offset = self._next_pts
                self._last_pts = None
                continue
            assert isinstance(frame, av.VideoFrame | av.AudioFrame)
            pts = (frame.pts or 0) + self._offset
            if isinstance(frame, av.AudioFrame):
                step = frame.samples
            else:
                step = pts - self._last_pts if self._last_pts is not None else 1
                self.size = (frame.width, frame.height)
            frame.pts = pts
            self._last_pts = pts
            self._next_pts = pts + max(step, 1)
            self.frames += 1
            return frame


def _track(player: MediaPlayer, kind: str) -> MediaStreamTrack | None:
    return player.audio if kind == "audio" else player.video
