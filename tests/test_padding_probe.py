"""Probes that pad before they move up: padding rises to the next layer's rate, a
queue, congestion or NACKs stop it, and only a clean padding moves the layer."""

from media.estimator import LayerController

RATES = [1_500_000.0, 450_000.0, 150_000.0]


def padding_controller() -> LayerController:
    c = LayerController(lambda: RATES, initial=1, audio_bps=lambda: 40_000.0)
    c.can_pad = True
    return c


def until_padding(c: LayerController, remb: float | None = None) -> tuple[int, float]:
    """Clean reports on 360p (with the receiver's REMB at `remb`) until a probe
    starts padding: (sequence, time) then."""
    seq, t = 1000, 0.0
    while not c.padding_bps:
        seq += 20
        c.report(t, seq, 0, delay=0.02)
        assert c.update(t, remb=remb, sent_bps=450_000) is None
        t += 0.5
    return seq, t


def test_a_probe_pads_first_and_moves_up_only_after_a_clean_padding() -> None:
    c = padding_controller()
    seq, t = 1000, 0.0
    moves: list[tuple[float, int | None]] = []
    padded_at: float | None = None
    while t < 30 and not moves:
        seq += 20
        c.report(t, seq, 0, delay=0.02)
        decision = c.update(t, remb=None, sent_bps=450_000)
        if c.padding_bps and padded_at is None:
            padded_at = t
            # up to the next layer's rate (1.5 Mbit/s), over what is sent
            assert 1_000_000 < c.padding_bps < 1_300_000
        if decision is not None:
            moves.append((t, decision.layer))
        t += 0.5
    assert padded_at is not None, "no padding before the probe"
    assert moves == [(padded_at + 7.0, 0)], "moved up before the padding had held"
    assert c.padding_bps == 0


def test_a_queue_on_one_report_stops_the_padding_and_the_layer_stays() -> None:
    c = padding_controller()
    seq, t = until_padding(c)
    started = t
    c.report(t, seq + 20, 0, delay=0.03)
    assert c.update(t, remb=None, sent_bps=450_000) is None and c.padding_bps
    t += 1.0
    c.report(t, seq + 40, 0, delay=0.13)  # the line's queue grows: +110 ms
    assert c.update(t, remb=None, sent_bps=450_000) is None, "the layer moved"
    assert c.padding_bps == 0 and c.layer == 1
    # a failed probe: the next one waits longer than the first did
    seq += 40
    while not c.padding_bps and t < started + 60:
        t += 0.5
        seq += 20
        c.report(t, seq, 0, delay=0.02)
        c.update(t, remb=None, sent_bps=450_000)
    assert t - started > 8.0, f"padded again {t - started:.1f} s later"


def test_nacks_for_a_tenth_of_the_packets_stop_the_padding() -> None:
    c = padding_controller()
    _, t = until_padding(c)
    c.start_counting(5000, 0)
    assert not c.nacked(t, 5030, 2), "two NACKs in thirty packets: a lossy line, not a full one"
    assert c.nacked(t, 5060, 8)
    assert c.update(t, remb=None, sent_bps=450_000) is None
    assert c.padding_bps == 0 and c.layer == 1


def test_a_line_that_falls_late_in_a_padding_probe_stops_it_on_the_next_nacks() -> None:
    c = padding_controller()
    _, t = until_padding(c)
    c.start_counting(10_000, 0)
    t += 5.0  # 5 s of clean padding: 225 packets of 360p went out
    c.nacked(t, 10_225, 1)
    # the line falls to 600 kbit/s: half of the next packets are lost
    assert not c.nacked(t + 0.6, 10_252, 4)
    assert c.nacked(t + 0.8, 10_261, 8), "waited for a tenth of the whole probe's packets"


def test_a_falling_remb_stops_the_padding_before_the_next_report() -> None:
    c = padding_controller()
    _, t = until_padding(c, remb=900_000)
    # the receiver's estimate climbs with the padding, then its detector sees the
    # queue grow: the REMB falls to 85 % of what arrives, no report in between
    for remb in (1_000_000, 1_100_000, 1_150_000):
        t += 0.5
        assert c.update(t, remb=remb, sent_bps=450_000) is None
        assert c.padding_bps, f"stopped on a rising REMB ({remb})"
    t += 0.2
    assert c.update(t, remb=820_000, sent_bps=450_000) is None, "the layer moved"
    assert c.padding_bps == 0 and c.layer == 1
    assert "REMB fell" in c.padding_note
    # the line measured about 820 kbit/s: 1.5 Mbit/s is not padded for soon
    ceiling = c.ceiling(t)
    assert ceiling is not None and ceiling <= 820_000


def test_a_remb_that_lags_the_padding_without_falling_lets_it_go_on() -> None:
    c = padding_controller()
    seq, t = until_padding(c, remb=600_000)
    # the padding rises faster than a receiver's estimate may: REMB stays under what
    # is sent, but it never falls
    moved = None
    for _ in range(16):
        t += 0.5
        seq += 20
        c.report(t, seq, 0, delay=0.02)
        moved = c.update(t, remb=600_000, sent_bps=450_000) or moved
    assert moved is not None and moved.layer == 0, c.padding_note
