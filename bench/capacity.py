"""A line's capacity over time, and how a classroom's stream followed it.

`Schedule` is a step profile such as RFC 8867 test 5.1 (1 → 2.5 → 0.6 → 1 Mbps).
`Sample` is what the benchmark saw every half second. From them:

- settle time after a drop: from the drop until the bitrate the server offers the
  line (RTP and retransmissions, with packet overheads) is at or below the new
  capacity and stays there for `SUSTAIN` seconds (or until the next change); 0
  when it was already under (`already_under`: nothing had to adapt);
- reaction time after a drop: until the first switch to a lower layer;
- climb time after a rise: until the layer is the best one whose nominal bitrate
  plus the audio fits in `HEADROOM` of the new capacity, and stays at least that
  good for `SUSTAIN` seconds (or until the next change).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SUSTAIN = 3.0  # seconds the offered bitrate must stay under capacity to count as settled
HEADROOM = 0.85  # the share of a line that a layer and the audio may fill


@dataclass(frozen=True)
class Schedule:
    steps: tuple[tuple[float, int], ...]  # (seconds from the start, bits per second)
    duration: float

    @classmethod
    def parse(cls, text: str, duration: float) -> "Schedule":
        """'0:1000000,40:2500000' (seconds:bps, k and M allowed: '40:2.5M')."""
        steps = []
        for part in text.split(","):
            at, _, rate = part.partition(":")
            steps.append((float(at), _bps(rate)))
        steps.sort()
        if not steps or steps[0][0] != 0:
            raise ValueError("a schedule starts at 0 s")
        if steps[-1][0] >= duration:
            raise ValueError("every step must start before the end")
        return cls(tuple(steps), duration)

    def scaled(self, factor: float) -> "Schedule":
        return Schedule(tuple((at * factor, bps) for at, bps in self.steps), self.duration * factor)

    def rate_at(self, t: float) -> int:
        rate = self.steps[0][1]
        for at, bps in self.steps:
            if at <= t:
                rate = bps
        return rate

    def phases(self) -> list[tuple[float, float, int, int | None]]:
        """(start, end, rate, previous rate) per step."""
        out: list[tuple[float, float, int, int | None]] = []
        for index, (at, bps) in enumerate(self.steps):
            end = self.steps[index + 1][0] if index + 1 < len(self.steps) else self.duration
            out.append((at, end, bps, self.steps[index - 1][1] if index else None))
        return out

    def describe(self) -> list[dict[str, float]]:
        return [{"at_s": at, "bps": bps} for at, bps in self.steps]


def _bps(text: str) -> int:
    text = text.strip()
    factor = {"k": 1e3, "K": 1e3, "M": 1e6, "m": 1e6}.get(text[-1:], 1.0)
    if factor != 1.0:
        text = text[:-1]
    return round(float(text) * factor)


@dataclass
class Sample:
    t: float  # seconds from the start of the profile
    capacity_bps: int
    offered_bps: float  # what the server sent towards the line, overheads included
    delivered_bps: float  # what the line carried (the shaper's output)
    estimate_bps: int | None  # the server's estimate of this line (link stats)
    remb_bps: int | None
    loss: float
    layer: str | None  # None: audio only (or no video yet)
    layer_index: int | None
    layer_rates: list[float]  # nominal bits per second of each layer, top first
    audio_bps: float
    keyframes_to_teacher: int
    keyframes_from_classrooms: int


def phase_summary(schedule: Schedule, samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """Per step: mean offered and delivered bitrate, how much of the time the server
    offered more than the line carries, and the layers it went through."""
    out = []
    for start, end, rate, _ in schedule.phases():
        phase = [s for s in samples if start < s.t <= end]
        if not phase:
            continue
        over = sum(1 for s in phase if s.offered_bps > s.capacity_bps)
        out.append(
            {
                "from_s": start,
                "to_s": end,
                "capacity_bps": rate,
                "offered_bps": round(sum(s.offered_bps for s in phase) / len(phase)),
                "delivered_bps": round(sum(s.delivered_bps for s in phase) / len(phase)),
                "over_capacity_share": round(over / len(phase), 3),
                "delivered_share_of_capacity": round(
                    sum(s.delivered_bps for s in phase) / len(phase) / rate, 3
                ),
                "seconds_by_layer": _seconds_by_layer(phase),
                "audio_only_s": round(sum(1 for s in phase if s.layer is None) * _step(phase), 1),
                "layers": _path(phase),
            }
        )
    return out


def _seconds_by_layer(phase: Sequence[Sample]) -> dict[str, float]:
    step = _step(phase)
    out: dict[str, float] = {}
    for sample in phase:
        name = sample.layer or "audio only"
        out[name] = round(out.get(name, 0.0) + step, 1)
    return out


def _step(phase: Sequence[Sample]) -> float:
    return (phase[-1].t - phase[0].t) / (len(phase) - 1) if len(phase) > 1 else 0.0


def settle_after_drops(schedule: Schedule, samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """For each step down in capacity: when the offered bitrate settled under it, and
    when the server first switched to a lower layer."""
    out = []
    for start, end, rate, previous in schedule.phases():
        if previous is None or rate >= previous:
            continue
        phase = [s for s in samples if start <= s.t < end]
        settle = None
        for index, sample in enumerate(phase):
            horizon = min(sample.t + SUSTAIN, end)
            window = [s for s in phase[index:] if s.t <= horizon]
            if all(s.offered_bps <= s.capacity_bps for s in window):
                settle = round(sample.t - start, 2)
                break
        before = [s for s in samples if s.t < start]
        level = before[-1].layer_index if before else 0
        recent = [s.offered_bps for s in before if s.t >= start - 2.0]
        offered_before = sum(recent) / len(recent) if recent else None
        react = None
        for sample in phase:
            if _lower(sample.layer_index, level):
                react = round(sample.t - start, 2)
                break
        out.append(
            {
                "at_s": start,
                "from_bps": previous,
                "to_bps": rate,
                "settle_s": settle,
                "offered_before_bps": round(offered_before) if offered_before else None,
                "already_under": offered_before is not None and offered_before <= rate,
                "first_switch_down_s": react,
                "layers": _path(phase),
            }
        )
    return out


def climb_after_rises(schedule: Schedule, samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """For each step up: how long until the layer was the best one that fits."""
    out = []
    for start, end, rate, previous in schedule.phases():
        if previous is None or rate <= previous:
            continue
        phase = [s for s in samples if start <= s.t < end]
        target = best_fitting(phase[0], rate) if phase else None
        climb = first = None
        if target is not None:
            for index, sample in enumerate(phase):
                if not _at_least(sample, target):
                    continue
                if first is None:
                    first = round(sample.t - start, 2)
                horizon = min(sample.t + SUSTAIN, end)
                if all(_at_least(s, target) for s in phase[index:] if s.t <= horizon):
                    climb = round(sample.t - start, 2)
                    break
        out.append(
            {
                "at_s": start,
                "from_bps": previous,
                "to_bps": rate,
                "target_layer": target,
                "climb_s": climb,
                "first_reached_s": first,
                "share_on_target": round(
                    sum(1 for s in phase if _at_least(s, target)) / len(phase), 3
                )
                if phase and target is not None
                else None,
                "layers": _path(phase),
            }
        )
    return out


def _at_least(sample: Sample, target: int) -> bool:
    return sample.layer_index is not None and sample.layer_index <= target


def best_fitting(sample: Sample, capacity: int) -> int | None:
    """The index of the best layer whose rate and the audio fit the line."""
    for index, rate in enumerate(sample.layer_rates):
        if rate + sample.audio_bps <= HEADROOM * capacity:
            return index
    return None


def _lower(index: int | None, than: int | None) -> bool:
    if index is None:
        return than is not None
    return than is not None and index > than


def _path(phase: Sequence[Sample]) -> list[list[Any]]:
    """(t, layer) at each change of layer within a phase."""
    path: list[list[Any]] = []
    for sample in phase:
        if not path or path[-1][1] != sample.layer:
            path.append([round(sample.t, 1), sample.layer])
    return path


def keyframe_rates(samples: Sequence[Sample]) -> dict[str, float]:
    """Keyframe requests that reached the teacher: in all, per second, and the most
    in any one-second window (as sampled)."""
    if len(samples) < 2:
        return {"to_teacher": 0, "per_second": 0.0, "max_in_one_second": 0}
    first, last = samples[0], samples[-1]
    total = last.keyframes_to_teacher - first.keyframes_to_teacher
    most = 0
    for index, sample in enumerate(samples):
        window = [s for s in samples[index:] if s.t <= sample.t + 1.0 + 1e-6]
        most = max(most, window[-1].keyframes_to_teacher - sample.keyframes_to_teacher)
    seconds = max(last.t - first.t, 1e-9)
    return {
        "to_teacher": total,
        "from_classrooms": last.keyframes_from_classrooms - first.keyframes_from_classrooms,
        "per_second": round(total / seconds, 3),
        "max_in_one_second": most,
    }
