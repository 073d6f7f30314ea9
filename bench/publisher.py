"""The teacher: publishes the pre-encoded clip (VP8 + Opus) through the signalling
protocol, without encoding anything. Run by bench.fanout:

    python -m bench.publisher URL TOKEN CLIP
"""

import argparse
import asyncio
import contextlib
import logging
import time
from pathlib import Path

from bench.cliptrack import ClipTrack, read_clip
from bench.control import commands, emit, stdin_reader
from bench.signalling import Signalling
from media import adapter
from media.peer import create_peer_connection, prefer_codec

AUDIO_INTERVAL = 0.020


async def publish(url: str, token: str, clip: Path) -> None:
    adapter.set_host_addresses(["127.0.0.1"])
    video, audio, interval = read_clip(clip)
    start = time.monotonic() + 0.5
    video_track = ClipTrack("video", video, interval, start)
    audio_track = ClipTrack("audio", audio, AUDIO_INTERVAL, start)
    pc = create_peer_connection()
    signalling = Signalling(url)
    try:
        pc.addTransceiver(audio_track, direction="sendonly")
        prefer_codec(pc.addTransceiver(video_track, direction="sendonly"), "VP8")
        await signalling.join(token, "teacher")
        await signalling.negotiate(pc)
        emit("ready")
        async for command in commands(await stdin_reader()):
            if command == "stats":
                emit("stats", t=time.monotonic(), video=video_track.sent, audio=audio_track.sent)
    finally:
        await asyncio.shield(pc.close())
        await signalling.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("clip", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(publish(args.url, args.token, args.clip))


if __name__ == "__main__":
    main()
