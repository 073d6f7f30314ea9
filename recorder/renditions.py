"""The after-lesson job: an archive in, the library's renditions out.

    OUTPUT/lesson.mp4          H.264/AAC, faststart: plays anywhere, and downloads
    OUTPUT/hls/master.m3u8     the ladder: top rung (up to 720p), 360p, audio only
    OUTPUT/thumbnail.jpg
    OUTPUT/renditions.json     the result: digest, duration, rungs; written last
    OUTPUT/status.json         progress: stage, percent, stages done

The job runs in stages, each of which writes its output under a temporary name and
renames it when complete. A job that is killed starts again at the first stage not
done (the status file says which, for which archive). A digest of the archive's
segment list decides whether the outputs are current: a job whose outputs are
current does nothing, and an archive that gained a segment is processed again.
"""

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import av

from recorder import stagemix
from recorder.archive import MANIFEST, Archive
from recorder.compose import fit_size
from recorder.encoding import AAC_CODECS, VideoRung
from recorder.hls import MASTER, Variant, copy_variant, transcode_variant, write_master
from recorder.mp4 import write_mp4
from recorder.reader import SegmentInfo, probe_segment
from recorder.status import STATUS, JobStatus, Progress, read_status, write_json_atomic
from recorder.thumbnail import write_thumbnail

logger = logging.getLogger(__name__)

VERSION = 1  # bump when the renditions change, so that every archive is redone
RESULT = "renditions.json"
MP4 = "lesson.mp4"
THUMBNAIL = "thumbnail.jpg"
HLS = "hls"
TOP_BOX = (1280, 720)
LOW_BOX = (640, 360)
AUDIO = "audio"


class NothingRecordedError(Exception):
    """The archive has no segment that can be read."""


def archive_digest(archive_dir: Path) -> str:
    """What the outputs were made from: the segment list, with each file's size
    (a segment left by a crash may still grow if the lesson goes on), and the stage
    audio files."""
    archive = Archive(archive_dir, archive_dir.name)
    items = []
    for segment in archive.manifest.segments:
        path = archive_dir / segment.file
        size = path.stat().st_size if path.exists() else -1
        items.append([segment.file, round(segment.started, 3), size])
    for segment in archive.manifest.stage:  # (absent from the digests of lessons without)
        path = archive_dir / segment.file
        size = path.stat().st_size if path.exists() else -1
        items.append(["stage", segment.file, round(segment.started, 3), size])
    text = json.dumps([VERSION, archive.manifest.lesson, items])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def read_result(output_dir: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((output_dir / RESULT).read_text(encoding="utf-8"))
        return data
    except (OSError, ValueError):
        return None


def outputs_current(archive_dir: Path, output_dir: Path) -> bool:
    """Whether `output_dir` holds the renditions of the archive as it is now."""
    if not (archive_dir / MANIFEST).exists():
        return False
    return RenditionJob(archive_dir, output_dir)._current(archive_digest(archive_dir))


def ladder(size: tuple[int, int]) -> list[VideoRung]:
    """The video rungs for a camera of `size`: the top one up to 720p, then 360p
    if the top is larger. Never larger than the camera."""
    top_w, top_h = fit_size(size, TOP_BOX)
    rungs = [VideoRung(f"{top_h}p", top_w, top_h, crf=23, maxrate=_maxrate(top_h))]
    if top_h > LOW_BOX[1]:
        low_w, low_h = fit_size(size, LOW_BOX)
        rungs.append(VideoRung(f"{low_h}p", low_w, low_h, crf=24, maxrate=_maxrate(low_h)))
    return rungs


def _maxrate(height: int) -> int:
    # a lesson is mostly still: these caps leave crf free and keep HLS honest
    return 2_000_000 if height > 540 else 1_000_000 if height > 360 else 700_000


class RenditionJob:
    def __init__(self, archive_dir: Path, output_dir: Path, *, threads: int = 1) -> None:
        self.archive_dir = archive_dir
        self.output_dir = output_dir
        self.hls_dir = output_dir / HLS
        self.threads = threads

    def run(self) -> str:
        """ "current" when there was nothing to do, "done" when outputs were made.
        The caller holds the output directory's lock (status.job_lock)."""
        try:
            return self._run()
        except NothingRecordedError as exc:
            failed = JobStatus(lesson=self.archive_dir.name, state="failed", error=str(exc))
            failed.updated = time.time()
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.output_dir / STATUS, asdict(failed))
            raise

    def _run(self) -> str:
        if not (self.archive_dir / MANIFEST).exists():
            raise NothingRecordedError(f"{self.archive_dir} holds no archive")
        digest = archive_digest(self.archive_dir)
        if self._current(digest):
            logger.info("%s: renditions are current", self.output_dir)
            return "current"
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._clean_partials()
        archive = Archive(self.archive_dir, self.archive_dir.name)
        segments = [i for p in archive.segment_paths() if (i := probe_segment(p)) is not None]
        if not segments:
            raise NothingRecordedError(f"{self.archive_dir}: no segment can be read")
        sizes = [s.video_size for s in segments if s.video_size is not None]
        rungs = ladder(max(sizes, key=lambda s: s[0] * s[1])) if sizes else []
        has_audio = any(s.has_audio for s in segments)
        expected = _expected_seconds(archive, segments)
        stages = self._stages(rungs, has_audio)
        previous = read_status(self.output_dir)
        status = JobStatus(
            lesson=archive.manifest.lesson,
            digest=digest,
            stages=[name for name, _, _ in stages],
            pid=os.getpid(),
            started=time.time(),
        )
        if previous is not None and previous.digest == digest:
            status.done = [s for s in previous.done if s in status.stages]
            status.facts = previous.facts
        progress = Progress(self.output_dir, status, {name: w for name, w, _ in stages})
        context = _Context(status.lesson, segments, rungs, expected, status.facts)
        context.stage = stagemix.plan(
            self.archive_dir, archive.manifest.segments, archive.manifest.stage, segments
        )
        try:
            for name, _, run in stages:
                if name in status.done and self._output_exists(name):
                    continue
                logger.info("%s: stage %s", self.output_dir, name)
                progress.begin(name)
                facts = run(context, progress.update)
                status.facts[name] = facts
                progress.stage_done(name)
        except Exception as exc:
            progress.fail(f"{type(exc).__name__}: {exc}")
            raise
        progress.finish()
        return "done"

    # -- stages ------------------------------------------------------------------

    def _stages(self, rungs: list[VideoRung], has_audio: bool) -> list[tuple[str, float, "_Stage"]]:
        pixels = rungs[0].width * rungs[0].height / (1280 * 720) if rungs else 0.0
        stages: list[tuple[str, float, _Stage]] = [("mp4", 1.0 + 5.0 * pixels, self._mp4)]
        for index, rung in enumerate(rungs):
            if index == 0:
                stages.append((f"hls-{rung.name}", 0.2, self._top_variant))
            else:
                stages.append((f"hls-{rung.name}", 2.0, self._lower_variant(rung)))
        if has_audio or not rungs:
            stages.append((f"hls-{AUDIO}", 0.1, self._audio_variant))
        if rungs:
            stages.append(("thumbnail", 0.1, self._thumbnail))
        stages.append(("result", 0.05, self._result))
        return stages

    def _mp4(self, context: "_Context", on_progress: Callable[[float], None]) -> dict[str, Any]:
        top = context.rungs[0] if context.rungs else None
        result = write_mp4(
            context.segments,
            top,
            self.output_dir / MP4,
            threads=self.threads,
            expected_seconds=context.expected,
            on_progress=on_progress,
            stage=context.stage,
        )
        return asdict(result)

    def _top_variant(self, context: "_Context", on_progress: Callable[[float], None]) -> Any:
        name = context.rungs[0].name
        variant = copy_variant(
            self.output_dir / MP4, self.hls_dir, name, video=True, on_progress=on_progress
        )
        return asdict(variant)

    def _lower_variant(self, rung: VideoRung) -> "_Stage":
        def run(context: _Context, on_progress: Callable[[float], None]) -> Any:
            variant = transcode_variant(
                self.output_dir / MP4,
                self.hls_dir,
                rung,
                threads=self.threads,
                on_progress=on_progress,
            )
            return asdict(variant)

        return run

    def _audio_variant(self, context: "_Context", on_progress: Callable[[float], None]) -> Any:
        variant = copy_variant(
            self.output_dir / MP4, self.hls_dir, AUDIO, video=False, on_progress=on_progress
        )
        return asdict(variant)

    def _thumbnail(self, context: "_Context", on_progress: Callable[[float], None]) -> Any:
        return {"written": write_thumbnail(self.output_dir / MP4, self.output_dir / THUMBNAIL)}

    def _result(self, context: "_Context", on_progress: Callable[[float], None]) -> Any:
        facts = context.facts
        variants = [
            Variant(**facts[name])
            for name in facts
            if name.startswith("hls-") and isinstance(facts[name], dict)
        ]
        # the lowest video rung first: players without bandwidth estimates start there
        variants.sort(key=lambda v: (v.height is None, v.height or 0))
        write_master(self.hls_dir, variants)
        with av.open(os.fspath(self.output_dir / MP4)) as container:
            duration = container.duration / av.time_base if container.duration else 0.0
            video = next(iter(container.streams.video), None)
            size = [video.codec_context.width, video.codec_context.height] if video else None
        mp4_facts = facts.get("mp4", {})
        result = {
            "format": VERSION,
            "lesson": context.lesson,
            "digest": archive_digest(self.archive_dir),
            "duration": round(duration, 3),
            "size": size,
            "mp4": MP4,
            "hls": f"{HLS}/{MASTER}",
            "thumbnail": THUMBNAIL if (self.output_dir / THUMBNAIL).exists() else None,
            "renditions": [
                {**asdict(v), "playlist": f"{HLS}/{v.playlist}", "audio_only": v.width is None}
                for v in variants
            ],
            "audio_codecs": AAC_CODECS,
            "joins": mp4_facts.get("joins", []),
            "damaged_packets": mp4_facts.get("damaged", 0),
            "stage_seconds": round(mp4_facts.get("stage_seconds", 0.0), 3),
            "created": time.time(),
        }
        write_json_atomic(self.output_dir / RESULT, result)
        return {"duration": result["duration"]}

    # -- housekeeping -----------------------------------------------------------

    def _current(self, digest: str) -> bool:
        result = read_result(self.output_dir)
        return (
            result is not None
            and result.get("digest") == digest
            and (self.output_dir / MP4).exists()
            and (self.hls_dir / MASTER).exists()
        )

    def _output_exists(self, stage: str) -> bool:
        if stage == "mp4":
            return (self.output_dir / MP4).exists()
        if stage.startswith("hls-"):
            return (self.hls_dir / stage[4:] / "index.m3u8").exists()
        if stage == "thumbnail":
            return (self.output_dir / THUMBNAIL).exists()
        return False

    def _clean_partials(self) -> None:
        """What a killed job left half-written."""
        for directory in (self.output_dir, self.hls_dir):
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                if path.name.startswith(".") and path.name.endswith((".partial", ".old", ".tmp")):
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)


class _Context:
    def __init__(
        self,
        lesson: str,
        segments: list[SegmentInfo],
        rungs: list[VideoRung],
        expected: float,
        facts: dict[str, Any],
    ) -> None:
        self.lesson = lesson
        self.segments = segments
        self.rungs = rungs
        self.expected = expected
        self.facts = facts
        self.stage: list[stagemix.StageFile] = []


_Stage = Callable[[_Context, Callable[[float], None]], Any]


def _expected_seconds(archive: Archive, segments: list[SegmentInfo]) -> float:
    """The lesson's length for the progress bar, before anything is decoded."""
    by_file = {s.file: s for s in archive.manifest.segments}
    total = 0.0
    for info in segments:
        if info.duration is not None:
            total += info.duration
            continue
        segment = by_file.get(info.path.name)
        if segment is not None and segment.ended is not None:
            total += max(0.0, segment.ended - segment.started)
    return total
