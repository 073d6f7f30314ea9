"""The packet path alone: what `FastSender.put` costs a forwarded packet, against
aiortc's own per-packet work, in one process, on real loopback sockets with real
SRTP.

bench/fanout.py measures the whole server: its marginal µs a packet also holds
RTCP, ICE consent checks, the event loop and, on loopback, the kernel's receive path
for the classrooms' sockets. This one takes the packet path alone, so that the two
together say where a packet's cost goes. N subscribers each get every frame of a
720p VP8 stream (6,250-byte frames, 1.5 Mbit/s at 30 fps) and of an Opus stream
(110-byte frames); a child process drains their sockets. Each path's CPU (user and
system, from getrusage) is divided by the packets it sent. The paths take turns,
`--rounds` times each, and the median round counts.

- fast: `FastSender.put` as the server runs it (a frame packetized once for all,
  each copy's header patched, lean SRTP, one GSO `sendmsg` a frame), behind a
  stand-in for the negotiated sender (its header template, payload type, route).
- fast-unsent, fast-python: the same without the socket, and without SRTP too;
  the differences give what the Python, SRTP and the socket (with the kernel's
  loopback delivery) each cost a packet.
- aiortc: aiortc's per-packet work without its coroutine chain: the frame
  packetized per subscriber by aiortc's encoder class, an `RtpPacket` a packet
  serialized with the negotiated extensions, pylibsrtp's `Session.protect`, and one
  `sendto` a packet.

    .venv/bin/python -m bench.putpath --n 64 --frames 600 --rounds 5 > putpath.json
"""

import sys
from pathlib import Path

if not __package__:  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import multiprocessing
import os
import platform
import resource
import selectors
import socket
import statistics
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from typing import Any

import av
import pylibsrtp
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from media import adapter, gso
from media.fastsender import FastSender

VIDEO_FRAME = 6250  # bytes: 1.5 Mbit/s at 30 fps
AUDIO_FRAME = 110  # bytes: Opus at about 40 kbit/s
PAYLOAD_TYPE = 96
MID = "0"


def _extensions() -> HeaderExtensionsMap:
    parameters = RTCRtpParameters(
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
            RTCRtpHeaderExtensionParameters(
                id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
            ),
        ]
    )
    extensions = HeaderExtensionsMap()
    extensions.configure(parameters)
    return extensions


def _session() -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=os.urandom(44),
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
    )
    return pylibsrtp.Session(policy)


def _drain(addresses: Any, stop: Event, count: int) -> None:
    """The classrooms' sockets: read until told to stop."""
    sockets = []
    selector = selectors.EpollSelector()
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        selector.register(sock, selectors.EVENT_READ)
        sockets.append(sock)
    addresses.put([s.getsockname() for s in sockets])
    while not stop.is_set():
        for key, _ in selector.select(0.1):
            try:
                while True:
                    key.fileobj.recv(2048)  # type: ignore[union-attr]
            except BlockingIOError:
                pass


class _Wiring:
    """Stands in for `adapter.SenderWiring` (which needs a negotiated aiortc sender):
    the same header template, payload type and route, over a real socket."""

    def __init__(self, route: adapter.Route, ssrc: int) -> None:
        self._route = route
        self.header, self.abs_send_time_at = adapter._header_template(_extensions(), MID, ssrc)
        self.payload_type = PAYLOAD_TYPE

    def route(self) -> adapter.Route:
        return self._route

    def account(self, packets: int, octets: int, rtp_timestamp: int, ntp: int) -> None:
        pass


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 21)
    return sock


def fast_path(
    kind: str, address: tuple[str, int], *, protect: bool = True, send: bool = True
) -> tuple[Callable[[av.Packet, int], int], Any]:
    """`FastSender.put`; without `send` (or `protect`) its route skips the socket
    (or SRTP), so that the differences between the three say what each costs."""
    codec = "vp8" if kind == "video" else "opus"
    sock = _socket()

    def fallback(data: bytes) -> None:
        sock.sendto(data, address)

    def nothing(data: Any) -> None:
        pass

    sender = gso.Sender(sock, address, fallback, lambda: 0)
    route = adapter.Route(
        None,
        adapter.lean_protect(_session()) if protect else bytes,
        sender.send if send else nothing,
        sender.send_many if send else nothing,
    )
    track = FastSender(kind, codec)
    track._wiring = _Wiring(route, 0x1234 if kind == "video" else 0x5678)  # type: ignore[assignment]
    track.waiting_for_keyframe = False

    def put(packet: av.Packet, index: int) -> int:
        before = track.packets_sent
        track.put(packet, index == 0)
        return track.packets_sent - before

    return put, sock


def aiortc_path(kind: str, address: tuple[str, int]) -> tuple[Callable[[av.Packet, int], int], Any]:
    sock = _socket()
    protect = _session().protect
    extensions = _extensions()
    state = {"sequence": 0, "picture_id": 0}

    def send(packet: av.Packet, index: int) -> int:
        data = bytes(packet)
        if kind == "video":
            payloads = Vp8Encoder._packetize(data, state["picture_id"])
            state["picture_id"] = (state["picture_id"] + 1) & 0x7FFF
        else:
            payloads = [data]
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            rtp = RtpPacket(
                payload_type=PAYLOAD_TYPE,
                sequence_number=state["sequence"],
                timestamp=index * 3000,
                ssrc=0x1234,
                payload=payload,
                marker=int(i == last),
            )
            rtp.extensions.mid = MID
            rtp.extensions.abs_send_time = index & 0xFFFFFF
            state["sequence"] = (state["sequence"] + 1) & 0xFFFF
            sock.sendto(protect(rtp.serialize(extensions)), address)
        return len(payloads)

    return send, sock


PATHS: dict[str, Callable[[str, tuple[str, int]], tuple[Callable[[av.Packet, int], int], Any]]] = {
    "fast": fast_path,
    "aiortc": aiortc_path,
    # the fast path's parts: without the socket, and without SRTP too
    "fast-unsent": lambda kind, address: fast_path(kind, address, send=False),
    "fast-python": lambda kind, address: fast_path(kind, address, protect=False, send=False),
}


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _round(
    senders: list[Callable[[av.Packet, int], int]], frames: list[av.Packet], count: int
) -> dict[str, float]:
    user0, system0 = _cpu()
    sent = 0
    for index in range(count):
        packet = frames[index % len(frames)]
        packet.pts = index * 3000
        for send in senders:
            sent += send(packet, index % len(frames))
        time.sleep(0.001)  # the drain keeps up; no socket buffer overflows
    user1, system1 = _cpu()
    return {
        "packets": sent,
        "user_us_per_packet": (user1 - user0) / sent * 1e6,
        "system_us_per_packet": (system1 - system0) / sent * 1e6,
        "us_per_packet": (user1 - user0 + system1 - system0) / sent * 1e6,
    }


def measure(n: int, frames: int, rounds: int) -> dict[str, Any]:
    addresses: Any = multiprocessing.Queue()
    stop = multiprocessing.Event()
    drain = multiprocessing.Process(target=_drain, args=(addresses, stop, n), daemon=True)
    drain.start()
    targets = addresses.get(timeout=30)
    streams = {
        "video": [
            av.Packet((b"\x10" if i == 0 else b"\x11") + os.urandom(VIDEO_FRAME - 1))
            for i in range(30)
        ],
        "audio": [av.Packet(os.urandom(AUDIO_FRAME)) for _ in range(50)],
    }
    results: dict[str, Any] = {}
    try:
        for kind, source in streams.items():
            paths = {name: [make(kind, tuple(a)) for a in targets] for name, make in PATHS.items()}
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in PATHS}
            for _ in range(rounds):
                for name, made in paths.items():
                    runs[name].append(_round([send for send, _ in made], source, frames))
            for made in paths.values():
                for _, sock in made:
                    sock.close()
            results[kind] = {
                name: {
                    key: round(statistics.median(r[key] for r in found), 3)
                    for key in found[0]
                    if key != "packets"
                }
                | {"packets_per_round": found[0]["packets"]}
                for name, found in runs.items()
            }
            found = results[kind]
            fast, stock = found["fast"], found["aiortc"]
            found["aiortc_over_fast"] = round(stock["us_per_packet"] / fast["us_per_packet"], 2)
            unsent, python = found["fast-unsent"], found["fast-python"]
            found["fast_parts_us"] = {
                "python": python["us_per_packet"],
                "srtp": round(unsent["us_per_packet"] - python["us_per_packet"], 3),
                "socket_and_kernel": round(fast["us_per_packet"] - unsent["us_per_packet"], 3),
            }
    finally:
        stop.set()
        drain.join(timeout=5)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=64, help="subscribers")
    parser.add_argument("--frames", type=int, default=600, help="frames a round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each path")
    args = parser.parse_args(argv)
    if args.n < 1 or args.frames < 1 or args.rounds < 1:
        parser.error("--n, --frames and --rounds must be 1 or more")
    results = measure(args.n, args.frames, args.rounds)
    share = {"video": 156 / 206, "audio": 50 / 206}  # packets a second of each, at 1.5 Mbit/s
    for name in ("fast", "aiortc"):
        results.setdefault("weighted", {})[name] = round(
            sum(share[k] * results[k][name]["us_per_packet"] for k in share), 3
        )
    weighted = results["weighted"]
    weighted["aiortc_over_fast"] = round(weighted["aiortc"] / weighted["fast"], 2)
    output = {
        "command": " ".join(["python -m bench.putpath", *(argv or sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "n": args.n,
        "frames_per_round": args.frames,
        "rounds": args.rounds,
        **results,
    }
    print(json.dumps(output, indent=2))
    for kind in ("video", "audio"):
        fast, stock = results[kind]["fast"], results[kind]["aiortc"]
        print(
            f"{kind}: fast {fast['us_per_packet']:.2f} µs/packet "
            f"({fast['system_us_per_packet']:.2f} in the kernel), aiortc "
            f"{stock['us_per_packet']:.2f} ({stock['system_us_per_packet']:.2f}): "
            f"{results[kind]['aiortc_over_fast']}x; fast's parts: "
            + ", ".join(f"{k} {v:.2f}" for k, v in results[kind]["fast_parts_us"].items()),
            file=sys.stderr,
        )
    print(
        f"weighted by packets (76 % video): fast {weighted['fast']:.2f} µs/packet, aiortc "
        f"{weighted['aiortc']:.2f}: {weighted['aiortc_over_fast']}x",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
