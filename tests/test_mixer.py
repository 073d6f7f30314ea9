"""The classroom mix: every voice in it, never clipped, mutes respected."""

import fractions

import av
import numpy as np

from media.mixer import FRAME, RATE, Mixer
from media.source import Source
from tests.frames import band_level, dominant_frequencies, tone_present


def opus_tone(frequency: float, amplitude: float, frames: int) -> list[av.Packet]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 64000
    packets = []
    for i in range(frames):
        t = (np.arange(FRAME) + i * FRAME) / RATE
        wave = (np.sin(2 * np.pi * frequency * t) * amplitude * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = i * FRAME
        for packet in encoder.encode(frame):
            out = av.Packet(bytes(packet))
            out.pts = packet.pts
            out.time_base = fractions.Fraction(1, RATE)
            packets.append(out)
    return packets


def run_mix(
    tones: dict[str, float], amplitude: float, muted: frozenset[str] = frozenset()
) -> np.ndarray:
    output = Source("mix", "audio", "opus", RATE)
    received: list[bytes] = []
    output.add_sink("listener", lambda packet, _key: received.append(bytes(packet)))
    mixer = Mixer(output)
    streams = {}
    for name, frequency in tones.items():
        source = Source(name, "audio", "opus", RATE)
        source.attach(lambda: None)
        streams[name] = (source, opus_tone(frequency, amplitude, 100))
    for name, (source, _) in streams.items():
        mixer.add(name, source)
        if name in muted:
            mixer.set_muted(name, True)
    try:
        for i in range(100):
            for source, packets in streams.values():
                source.push_packet(packets[i], True)
            mixer.mix_once()
    finally:
        mixer.close()
    decoder = av.CodecContext.create("opus", "r")
    samples = []
    for data in received:
        for frame in decoder.decode(av.Packet(data)):
            samples.append(frame.to_ndarray().astype(np.float32).reshape(-1)[: frame.samples])
    return np.concatenate(samples)


async def test_the_mix_holds_every_classrooms_tone() -> None:
    tones = {"a": 350.0, "b": 620.0, "c": 910.0}
    mix = run_mix(tones, 0.25)
    steady = mix[RATE // 2 :]
    found = dominant_frequencies(steady, RATE, 3)
    for frequency in tones.values():
        assert any(abs(f - frequency) < 20 for f in found), (frequency, found)


async def test_loud_classrooms_together_never_clip() -> None:
    mix = run_mix({"a": 300.0, "b": 500.0, "c": 700.0}, 0.8)  # 2.4 full scale summed
    steady = mix[RATE // 2 :]
    assert float(np.max(np.abs(steady))) < 0.99
    assert float(np.mean(np.abs(steady) > 0.98)) < 0.001, "flat-topped samples: clipping"
    for frequency in (300.0, 500.0, 700.0):
        assert tone_present(steady, RATE, frequency)


async def test_a_muted_classroom_is_left_out_of_the_mix() -> None:
    mix = run_mix({"a": 350.0, "b": 620.0}, 0.3, muted=frozenset({"b"}))
    steady = mix[RATE // 2 :]
    assert tone_present(steady, RATE, 350.0)
    heard, muted = band_level(steady, RATE, 350.0), band_level(steady, RATE, 620.0)
    assert muted < heard / 100, "the muted classroom is still audible (above -40 dB)"


async def test_a_short_beep_between_two_polls_is_still_heard() -> None:
    # Chromium's fake microphone beeps 20 ms every 500 ms and the lesson polls the
    # levels once a second: the poll must see the loudest moment, not the last one.
    output = Source("mix", "audio", "opus", RATE)
    mixer = Mixer(output)
    source = Source("a", "audio", "opus", RATE)
    source.attach(lambda: None)
    mixer.add("a", source)
    beep, silence = opus_tone(400.0, 0.5, 1), opus_tone(400.0, 0.0, 30)
    try:
        assert mixer.peak_levels() == {"a": -np.inf}
        for packet in beep + silence:
            source.push_packet(packet, True)
            mixer.mix_once()
        assert mixer.peak_levels()["a"] > -40.0, "a beep 0.5 s before the poll is lost"
        for packet in opus_tone(400.0, 0.0, 25):
            source.push_packet(packet, True)
            mixer.mix_once()
        assert mixer.peak_levels()["a"] < -40.0, "a beep from before the last poll still counts"
    finally:
        mixer.close()
