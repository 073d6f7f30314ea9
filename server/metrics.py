"""Prometheus metrics: lessons, peers, forwarded packets and bytes, keyframe requests,
and what waits in the server's queues.

Counters are read from the live objects when scraped, so the forwarding path pays
nothing for them.
"""

import asyncio
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from media.delay import FORWARD_DELAY, LOOP_LAG, DelayHistogram
from server.keys import LESSONS
from server.lesson import Lesson
from server.lessons import Lessons
from server.looplag import loop_lag_ctx
from server.tokens import ROLES


class LessonCollector(Collector):
    def __init__(self, lessons: Lessons) -> None:
        self._lessons = lessons

    def collect(self) -> Iterator[Metric]:
        lessons = list(self._lessons)
        yield GaugeMetricFamily("zhuandi_lessons", "Live lessons", value=len(lessons))
        live = sum(1 for lesson in lessons if lesson.live)
        yield GaugeMetricFamily("zhuandi_lessons_live", "Lessons whose teacher is live", value=live)
        peers = GaugeMetricFamily("zhuandi_peers", "Connected peers", labels=["role"])
        for role in ROLES:
            count = sum(1 for lesson in lessons for p in lesson.peers.values() if p.role == role)
            peers.add_metric([role], count)
        yield peers
        packets, octets = self._lessons.retired_forwarded
        received, sent = self._lessons.retired_keyframe_requests
        for lesson in lessons:
            for peer in lesson.peers.values():
                p, o = peer.forwarded()
                packets += p
                octets += o
            for source in lesson.sources.values():
                r, s = source.keyframe_requests
                received += r
                sent += s
        yield CounterMetricFamily(
            "zhuandi_forwarded_packets", "RTP packets forwarded to subscribers", value=packets
        )
        yield CounterMetricFamily(
            "zhuandi_forwarded_bytes", "Payload bytes forwarded to subscribers", value=octets
        )
        requests = CounterMetricFamily(
            "zhuandi_keyframe_requests",
            "Keyframe requests: from subscribers, and sent on to publishers (coalesced)",
            labels=["direction"],
        )
        requests.add_metric(["from_subscribers"], received)
        requests.add_metric(["to_publishers"], sent)
        yield requests
        yield from self._queues(lessons)
        yield _histogram(
            "zhuandi_forward_delay_seconds",
            "From a publisher's packet reaching the server to its frame's last packet sent "
            "to the last subscriber (fast path; with aiortc's sender, to its queue)",
            FORWARD_DELAY,
        )
        yield _histogram(
            "zhuandi_loop_lag_seconds", "How late the event loop runs a 50 ms timer", LOOP_LAG
        )

    def _queues(self, lessons: list[Lesson]) -> Iterator[Metric]:
        """Every queue is bounded; a total that keeps growing still means a leak
        (bench/soak.py watches these over a lesson)."""
        outbox = frames = ladder = recorder = connections = 0
        for lesson in lessons:
            for peer in lesson.peers.values():
                outbox += peer.outbox.qsize()
                frames += sum(down.track.queued for _, down in peer.downs)
                connections += peer.pc is not None
            ladder += sum(each.queued for each in lesson.streams.ladders)
            if lesson.recording is not None:
                recorder += lesson.recording.queued
        queued = GaugeMetricFamily(
            "zhuandi_queued",
            "Items waiting: signalling messages in peers' outboxes, frames in down tracks, "
            "frames for the ladders' encoders, packets for the recorder's writers",
            labels=["queue"],
        )
        for name, value in (
            ("outbox", outbox),
            ("down_frames", frames),
            ("ladder", ladder),
            ("recorder", recorder),
        ):
            queued.add_metric([name], value)
        yield queued
        yield GaugeMetricFamily(
            "zhuandi_peer_connections", "Media connections open", value=connections
        )
        yield GaugeMetricFamily(
            "zhuandi_tasks", "asyncio tasks in the server", value=len(asyncio.all_tasks())
        )


def _histogram(name: str, documentation: str, histogram: DelayHistogram) -> Metric:
    buckets = [
        ("+Inf" if bound == float("inf") else repr(bound), count)
        for bound, count in histogram.cumulative()
    ]
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.total)


METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


def setup_metrics(app: web.Application) -> None:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(LessonCollector(app[LESSONS]))
    app[METRICS_REGISTRY] = registry
    app.cleanup_ctx.append(loop_lag_ctx)
    app.router.add_get("/metrics", metrics_handler)


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
