"""A lesson's media: who publishes what, and what each peer is sent.

Publishers are the teacher ("teacher") and classrooms (by seat). Each publishes a
microphone and a camera, and the teacher also courseware. Every video source has a
ladder (built lazily; its lower layers are only encoded while someone receives
them): the cameras' ladder scales down, the courseware's keeps its resolution and
drops its frame rate first (blackboard mode).

What a peer receives is named (see server/layout.py): the teacher's audio, camera
and courseware; the classroom on stage; the classrooms' mix (numpy, for the
teacher); and grid slots that each show one classroom's camera, small.
"""

import logging
from collections.abc import Callable

from config import MediaSettings
from media.downlink import VideoDownlink
from media.ladder import DEFAULT_LAYERS, Ladder, LayerSpec
from media.mixer import Mixer
from media.source import Source
from media.subscription import AudioFollower, Subscription

logger = logging.getLogger(__name__)

TEACHER = "teacher"
CLOCK_RATES = {"video": 90000, "audio": 48000}
BLACKBOARD_LAYERS = (
    LayerSpec("blackboard", 0, 300_000, 5),  # same resolution, 5 fps
    LayerSpec("blackboard-low", 540, 150_000, 3),
)
NAMES = {("microphone", "audio"), ("camera", "video"), ("courseware", "video")}

Down = Subscription | VideoDownlink | AudioFollower


class LessonStreams:
    def __init__(self, lesson_id: str, settings: MediaSettings) -> None:
        self.lesson_id = lesson_id
        self._settings = settings
        self._fast = settings.fast_path
        self._sources: dict[tuple[str, str], Source] = {}
        self._ladders: dict[tuple[str, str], Ladder] = {}
        self._mixer: Mixer | None = None
        self.stage: str | None = None
        self.muted: set[str] = set()
        self._stage_audio: list[tuple[str, AudioFollower]] = []  # (receiving seat, follower)
        self._stage_video: list[tuple[str, VideoDownlink]] = []  # (receiving seat, downlink)
        self._grid: dict[str, list[VideoDownlink]] = {}  # receiving peer -> slots
        self.grid_order: list[str] = []  # classroom seats, in the order they joined

    # -- sources ---------------------------------------------------------------

    def source(self, owner: str, name: str) -> Source:
        """`owner`'s microphone, camera or courseware."""
        key = (owner, name)
        source = self._sources.get(key)
        if source is None:
            kind = "audio" if name == "microphone" else "video"
            codec = "opus" if kind == "audio" else self._settings.video_codec
            source = Source(
                f"{self.lesson_id}/{owner}/{name}",
                kind,
                codec,
                CLOCK_RATES[kind],
                keyframe_min_interval=self._settings.keyframe_min_interval,
                keyframe_cache_seconds=self._settings.keyframe_cache_seconds,
                queue_frames=self._settings.subscriber_queue_frames if kind == "video" else 50,
            )
            self._sources[key] = source
        return source

    def existing(self, owner: str, name: str) -> Source | None:
        return self._sources.get((owner, name))

    def ladder(self, owner: str, name: str) -> Ladder:
        key = (owner, name)
        ladder = self._ladders.get(key)
        if ladder is None:
            specs = BLACKBOARD_LAYERS if name == "courseware" else DEFAULT_LAYERS
            ladder = Ladder(
                self.source(owner, name),
                specs,
                keyframe_min_interval=0.5,
                queue_frames=self._settings.subscriber_queue_frames,
            )
            self._ladders[key] = ladder
        return ladder

    @property
    def sources(self) -> dict[tuple[str, str], Source]:
        return dict(self._sources)

    @property
    def ladders(self) -> list[Ladder]:
        return list(self._ladders.values())

    def publishing(self, owner: str) -> bool:
        return any(s.live for (o, _), s in self._sources.items() if o == owner)

    # -- what peers receive ------------------------------------------------------

    def down(
        self,
        seat: str,
        peer_id: str,
        name: str,
        *,
        cap: str,
        initial: int | None = 0,
        reserve: Callable[[], float],
        total_sent: Callable[[tuple[int, ...]], float],
        on_change: Callable[[], None],
        label: str,
    ) -> Down:
        """The down stream `name` for the peer in `seat`."""
        if name == "teacher-audio":
            return Subscription(self.source(TEACHER, "microphone"), fast=self._fast)
        if name == "classroom-mix":
            return Subscription(self.mixer().output, fast=self._fast)
        if name == "stage-audio":
            follower = AudioFollower(self._stage_source(seat, "microphone"), fast=self._fast)
            self._stage_audio.append((seat, follower))
            return follower
        video_cap = "low" if name == "grid" else cap
        if name in ("teacher-camera", "courseware"):
            ladder: Ladder | None = self.ladder(TEACHER, "camera" if name != "courseware" else name)
        elif name == "stage-camera":
            ladder = self._stage_ladder(seat)
        else:  # grid
            ladder = None
        downlink = VideoDownlink(
            ladder,
            fast_codec=self._settings.video_codec if self._fast else None,
            cap=video_cap,
            initial=initial if name == "teacher-camera" else 0,
            reserve=reserve,
            total_sent=total_sent,
            on_change=on_change,
            name=f"{label} {name}",
            queue_frames=self._settings.subscriber_queue_frames,
        )
        if name == "stage-camera":
            self._stage_video.append((seat, downlink))
        elif name == "grid":
            self._grid.setdefault(peer_id, []).append(downlink)
            self._assign_grid(peer_id)
        return downlink

    def forget(self, peer_id: str, downs: list[Down]) -> None:
        """A peer's down streams are closing."""
        self._stage_audio = [(s, f) for s, f in self._stage_audio if f not in downs]
        self._stage_video = [(s, d) for s, d in self._stage_video if d not in downs]
        self._grid.pop(peer_id, None)

    # -- the classroom mix -------------------------------------------------------

    def mixer(self) -> Mixer:
        if self._mixer is None:
            self._mixer = Mixer(Source(f"{self.lesson_id}/mix", "audio", "opus", 48000))
        return self._mixer

    def publisher_started(self, owner: str, name: str) -> None:
        """`owner` began publishing `name`: classrooms' microphones go into the mix,
        their cameras into the teacher's grid."""
        if owner == TEACHER:
            return
        if name == "microphone":
            self.mixer().add(owner, self.source(owner, name))
            self.mixer().set_muted(owner, owner in self.muted)
        elif name == "camera" and owner not in self.grid_order:
            self.grid_order.append(owner)
            for peer_id in self._grid:
                self._assign_grid(peer_id)

    def publisher_left(self, owner: str) -> None:
        """A classroom left for good: out of the mix, the grid and the stage."""
        if self._mixer is not None:
            self._mixer.remove(owner)
        if owner in self.grid_order:
            self.grid_order.remove(owner)
            for peer_id in self._grid:
                self._assign_grid(peer_id)
        if self.stage == owner:
            self.set_stage(None)

    def _assign_grid(self, peer_id: str) -> None:
        for index, slot in enumerate(self._grid.get(peer_id, [])):
            owner = self.grid_order[index] if index < len(self.grid_order) else None
            slot.retarget(self.ladder(owner, "camera") if owner is not None else None)

    def grid_for(self, peer_id: str) -> list[str | None]:
        """Which classroom seat each of this peer's grid slots shows."""
        slots = self._grid.get(peer_id, [])
        return [self.grid_order[i] if i < len(self.grid_order) else None for i in range(len(slots))]

    # -- the stage and mutes -----------------------------------------------------

    def set_stage(self, seat: str | None) -> None:
        """Bring `seat` on stage (or nobody): every stage stream follows."""
        self.stage = seat
        for receiving_seat, downlink in self._stage_video:
            downlink.retarget(self._stage_ladder(receiving_seat))
        self._refresh_stage_audio()

    def _refresh_stage_audio(self) -> None:
        for receiving_seat, follower in self._stage_audio:
            follower.retarget(self._stage_source(receiving_seat, "microphone"))

    def _stage_source(self, receiving_seat: str, name: str) -> Source | None:
        seat = self.stage
        if seat is None or seat == receiving_seat or seat in self.muted:
            return None
        return self.source(seat, name)

    def _stage_ladder(self, receiving_seat: str) -> Ladder | None:
        seat = self.stage
        if seat is None or seat == receiving_seat:
            return None
        return self.ladder(seat, "camera")

    def set_muted(self, seat: str, muted: bool) -> None:
        if muted:
            self.muted.add(seat)
        else:
            self.muted.discard(seat)
        if self._mixer is not None:
            self._mixer.set_muted(seat, muted)
        self._refresh_stage_audio()

    def peak_levels(self) -> dict[str, float]:
        """Each classroom's loudest audio level (dBFS) in the mix since the last call."""
        if self._mixer is None:
            return {}
        return {str(k): v for k, v in self._mixer.peak_levels().items()}

    def close(self) -> None:
        if self._mixer is not None:
            self._mixer.close()
            self._mixer.output.close()
        for ladder in self._ladders.values():
            ladder.close()
        for source in self._sources.values():
            source.close()
        self._ladders.clear()
        self._sources.clear()
