"""UDP segmentation offload: a frame's packets in one system call arrive as the
same separate datagrams, in order, on a real socket."""

import socket
import time

import pytest

from media import gso


def _pair() -> tuple[socket.socket, socket.socket]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(1.0)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return receiver, sender


def _drain(receiver: socket.socket, count: int) -> list[bytes]:
    return [receiver.recv(65536) for _ in range(count)]


def test_runs_cut_at_a_larger_packet_and_after_a_smaller_one() -> None:
    sizes = [1200, 1200, 1200, 700, 1200, 1300, 1300, 5]
    packets = [bytes(size) for size in sizes]
    assert gso.runs(packets) == [(0, 4), (4, 5), (5, 8)]


def test_runs_respect_the_kernel_segment_limit() -> None:
    packets = [bytes(100)] * (gso.MAX_SEGMENTS + 3)
    assert gso.runs(packets) == [(0, gso.MAX_SEGMENTS), (gso.MAX_SEGMENTS, gso.MAX_SEGMENTS + 3)]


def test_a_frame_arrives_as_its_datagrams_in_order() -> None:
    receiver, sender = _pair()
    fallen_back: list[bytes] = []

    def fallback(data: bytes) -> None:
        fallen_back.append(data)
        sender.sendto(data, receiver.getsockname())

    send = gso.Sender(sender, receiver.getsockname(), fallback, lambda: 0).send_many
    # a keyframe's worth: 50 equal packets and a short last one, numbered
    packets = [bytes([n]) * 1210 for n in range(50)] + [b"\xff" * 333]
    send(packets)
    assert _drain(receiver, len(packets)) == packets
    assert gso.available(), "this kernel supports UDP_SEGMENT on loopback"
    assert fallen_back == []
    receiver.close()
    sender.close()


def test_while_the_transport_holds_packets_back_everything_queues_behind_them() -> None:
    receiver, sender = _pair()
    queued: list[bytes] = []
    send = gso.Sender(sender, receiver.getsockname(), queued.append, lambda: 1).send_many
    packets = [b"a" * 100, b"b" * 100, b"c" * 50]
    send(packets)
    assert queued == packets
    receiver.settimeout(0.1)
    with pytest.raises(TimeoutError):
        receiver.recv(65536)
    receiver.close()
    sender.close()


def test_a_full_socket_buffer_falls_back_without_losing_the_frame() -> None:
    receiver, sender = _pair()
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sender.setblocking(False)
    kept: list[bytes] = []
    send = gso.Sender(sender, receiver.getsockname(), kept.append, lambda: 0).send_many
    # far more than the send buffer holds, in one frame
    send([bytes(1200)] * 60)
    time.sleep(0.05)
    received = 0
    receiver.settimeout(0.2)
    try:
        while True:
            receiver.recv(65536)
            received += 1
    except TimeoutError:
        pass
    assert received + len(kept) == 60
    assert gso.available(), "a full buffer is not a refusal of GSO"
    receiver.close()
    sender.close()
