"""The rural benchmark's figures (bench/rural.py): what each classroom saw, the
capacity figures from the server's samples, and the verdict against issue 3's
targets. `reanalyse` recomputes them from an earlier run's files."""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.capacity import (
    Sample,
    Schedule,
    climb_after_rises,
    keyframe_rates,
    phase_summary,
    settle_after_drops,
)
from bench.rateplot import plot
from tests.netpeer import Reception

SAMPLE_EVERY = 0.5
TARGETS = {
    "settle_s": 1.0,
    "freeze_share": 0.01,
    "audio_loss_share": 0.01,
    "keyframes_to_teacher_per_second": 1.0,
}


def python_figures(result: Reception, duration: float, start: float) -> dict[str, Any]:
    """What a Python classroom saw, over the profile's run."""
    end = start + duration
    first = result.first_frame_at()
    frozen = result.freezes(start, end)
    expected, received = result.audio_frames(start, end)
    frames = result.frames_between(start, end)
    return {
        "error": result.error,
        "frames_decoded": len(frames),
        "frames_in_order": result.in_order(),
        "repeated_numbers": result.repeats(),
        "damaged_frames": result.data["damaged"],
        "sizes": sorted({f"{w}x{h}" for _, _, w, h in frames}),
        "first_frame_before_profile_s": round(start - first, 2) if first else None,
        "freeze_s": round(sum(length for _, length in frozen), 2),
        "freeze_share": round(sum(length for _, length in frozen) / duration, 4),
        "freezes": len(frozen),
        "longest_freeze_s": round(max((length for _, length in frozen), default=0.0), 2),
        "audio_frames_expected": expected,
        "audio_frames_lost": expected - received,
        "audio_loss_share": round((expected - received) / expected, 4) if expected else None,
        "tone_present": result.data["tone_present"],
        "receivers": result.data["receivers"],
    }


def browser_figures(before: dict[str, Any], after: dict[str, Any], duration: float) -> dict:
    video_before, video = before.get("video", {}), after.get("video", {})
    audio_before, audio = before.get("audio", {}), after.get("audio", {})
    frozen = video.get("totalFreezesDuration", 0) - video_before.get("totalFreezesDuration", 0)
    received = audio.get("packetsReceived", 0) - audio_before.get("packetsReceived", 0)
    lost = audio.get("packetsLost", 0) - audio_before.get("packetsLost", 0)
    return {
        "frames_decoded": video.get("framesDecoded", 0) - video_before.get("framesDecoded", 0),
        "freeze_s": round(frozen, 2),
        "freeze_share": round(frozen / duration, 4),
        "freezes": video.get("freezeCount", 0) - video_before.get("freezeCount", 0),
        "freeze_definition": "Chromium's totalFreezesDuration (its own freeze rule)",
        "audio_packets_received": received,
        "audio_frames_lost": lost,
        "audio_loss_share": round(lost / (received + lost), 4) if received + lost else None,
        "audio_concealed_share": round(
            (audio.get("concealedSamples", 0) - audio_before.get("concealedSamples", 0))
            / max(
                1,
                audio.get("totalSamplesReceived", 0) - audio_before.get("totalSamplesReceived", 0),
            ),
            4,
        ),
    }


def analyse(
    report: dict[str, Any], schedule: Schedule, samples: dict[str, list[Sample]], out: Path
) -> dict[str, Any]:
    """Add the capacity figures, the samples, the plots and the verdict to a report
    that has each classroom's own figures, and write it all to `out`."""
    first = next(iter(samples.values()), [])
    report["keyframes"] = keyframe_rates(first)
    for name, mine in samples.items():
        report["classrooms"][name] = {
            **report["classrooms"].get(name, {}),
            "phases": phase_summary(schedule, mine),
            "drops": settle_after_drops(schedule, mine),
            "rises": climb_after_rises(schedule, mine),
            "time_audio_only_s": round(sum(SAMPLE_EVERY for s in mine if s.layer is None), 1),
        }
        (out / f"{name}-samples.json").write_text(json.dumps([asdict(s) for s in mine]))
        loss = report.get("loss_percent")
        title = f"{report['profile']}: {report['classroom']}" + (f", {loss}% loss" if loss else "")
        why = plot(mine, out / f"{name}.png", title)
        report["classrooms"][name]["plot"] = str(out / f"{name}.png") if why is None else why
    report["verdict"] = verdict(report)
    (out / "rural.json").write_text(json.dumps(report, indent=2))
    return report


def verdict(report: dict[str, Any]) -> dict[str, bool | None]:
    """Each target met (True), missed (False) or not measured (None)."""
    rooms = list(report["classrooms"].values())
    settles = [d["settle_s"] for room in rooms for d in room["drops"] if not d["already_under"]]
    freeze = [room.get("freeze_share") for room in rooms]
    audio = [room.get("audio_loss_share") for room in rooms]
    keyframes = report["keyframes"].get("max_in_one_second")
    return {
        "settle_within_1s": all(s is not None and s <= TARGETS["settle_s"] for s in settles)
        if settles
        else None,
        "freezes_under_1pct": None
        if None in freeze
        else all(f is not None and f < TARGETS["freeze_share"] for f in freeze),
        "audio_loss_under_1pct": None
        if None in audio
        else all(a is not None and a < TARGETS["audio_loss_share"] for a in audio),
        "at_most_1_keyframe_request_per_s": None if keyframes is None else keyframes <= 1,
    }


def reanalyse(out: Path) -> dict[str, Any]:
    """Recompute the figures of an earlier run from its OUT/rural.json and samples."""
    report = json.loads((out / "rural.json").read_text())
    steps = tuple((float(step["at_s"]), int(step["bps"])) for step in report["schedule"])
    schedule = Schedule(steps, float(report["duration_s"]))
    samples = {
        name: [Sample(**raw) for raw in json.loads((out / f"{name}-samples.json").read_text())]
        for name in report["classrooms"]
    }
    return analyse(report, schedule, samples, out)
