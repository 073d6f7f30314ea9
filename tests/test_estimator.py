"""The layer choice: down fast, up by cautious probing, never flapping."""

import itertools

import pytest

from media.estimator import Decision, LayerController

RATES = [1_500_000.0, 450_000.0, 150_000.0]


def controller(initial: int | None = 0, cap: int | None = 0) -> LayerController:
    return LayerController(lambda: RATES, initial=initial, cap=cap, audio_bps=lambda: 40_000.0)


def test_a_line_that_fits_keeps_the_top_layer() -> None:
    c = controller()
    for t in range(60):
        c.report(float(t), 1000 + 150 * t, 0)
        assert c.update(float(t), remb=3_000_000, sent_bps=1_500_000) is None
    assert c.layer == 0


def test_congestion_goes_straight_to_the_layer_that_fits() -> None:
    c = controller()
    c.report(0.0, 1000, 0)
    c.update(0.0, remb=3_000_000, sent_bps=1_500_000)
    c.report(1.0, 1150, 0)
    decision = c.update(1.0, remb=300_000, sent_bps=1_500_000)
    assert decision is not None and decision.layer == 2, "300 kbps fits only the 180p layer"


def test_heavy_loss_without_remb_steps_down_and_finally_pauses_video() -> None:
    c = controller()
    layers = []
    for t in range(12):
        c.report(float(t), 1000 + 100 * t, 30 * t)  # 30% loss
        decision = c.update(float(t), remb=None, sent_bps=400_000)
        if decision is not None:
            layers.append(decision.layer)
    assert layers[-1] is None and c.layer is None
    assert layers == sorted(layers, key=lambda x: 99 if x is None else x)


def test_after_a_failed_probe_the_hold_doubles() -> None:
    c = controller(initial=1)
    t = 0.0
    seq, lost = 1000, 0
    probes = []
    while t < 120:
        seq += 50
        up_here = c.layer == 0
        if up_here:
            # the top layer does not fit this line: 20% loss (not heavy enough to
            # measure the line, so no ceiling: the hold alone spaces the probes)
            lost += 10
        c.report(t, seq, lost)
        decision = c.update(t, remb=None, sent_bps=1_500_000 if up_here else 450_000)
        if decision is not None and decision.layer == 0:
            probes.append(t)
        t += 0.5
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert len(probes) >= 3
    assert all(later >= earlier for earlier, later in itertools.pairwise(gaps))
    assert gaps[-1] >= 2 * gaps[0], f"probes did not back off: {probes}"


def test_a_recovered_line_comes_back_up_one_layer_at_a_time() -> None:
    c = controller(initial=None)
    seen = []
    for step in range(80):
        t = step * 0.5
        c.report(t, 1000 + 50 * step, 0)
        decision = c.update(
            t, remb=5_000_000, sent_bps=RATES[c.layer] if c.layer is not None else 0
        )
        if decision is not None:
            seen.append(decision.layer)
    assert seen == [2, 1, 0]


def test_remb_lagging_after_an_up_switch_is_not_congestion() -> None:
    c = controller(initial=1)
    c.report(0.0, 1000, 0)
    c.update(0.0, remb=600_000, sent_bps=450_000)
    c.layer = 1
    decision = c.update(10.0, remb=600_000, sent_bps=450_000)
    assert decision is not None and decision.layer == 0
    # REMB has not caught up with 1.5 Mbps yet; that alone is no reason to go back down
    c.report(11.0, 1200, 0)
    assert c.update(11.0, remb=650_000, sent_bps=1_500_000) is None
    c.report(12.0, 1400, 0)
    assert c.update(12.0, remb=1_600_000, sent_bps=1_500_000) is None
    # now it has, and a real drop counts once it lasts (one report could be a
    # receiver's hiccup)
    c.report(13.0, 1600, 0)
    assert c.update(13.0, remb=900_000, sent_bps=1_500_000) is None
    c.report(13.5, 1700, 0)
    decision = c.update(13.5, remb=900_000, sent_bps=1_500_000)
    assert decision is not None and decision.layer == 1


def test_the_classrooms_cap_wins() -> None:
    c = controller(initial=0, cap=2)
    decision = c.update(0.0, remb=10_000_000, sent_bps=1_500_000)
    assert decision is not None and decision.layer == 2
    for t in range(1, 60):
        assert c.update(float(t), remb=10_000_000, sent_bps=150_000) is None
    c.cap = None
    decision = c.update(61.0, remb=10_000_000, sent_bps=150_000)
    assert decision is not None and decision.layer is None


def test_loss_is_smoothed_over_the_window() -> None:
    c = controller()
    c.report(0.0, 1000, 0)
    c.report(1.0, 1100, 5)
    c.report(2.0, 1200, 10)
    assert abs(c.loss - 0.05) < 1e-9
    c.report(5.0, 1500, 10)  # no new loss over the last window
    assert c.loss < 0.04


def test_one_delay_spike_at_the_lowest_layer_does_not_stop_video() -> None:
    c = controller(initial=2, cap=2)
    c.report(0.0, 1000, 0)
    c.update(0.0, remb=300_000, sent_bps=150_000)
    c.report(1.0, 1050, 0)
    # REMB dips below the rate being sent (a busy receiver), but not far
    assert c.update(1.0, remb=160_000, sent_bps=190_000) is None
    assert c.layer == 2
    c.report(2.0, 1100, 0)
    assert c.update(2.0, remb=400_000, sent_bps=190_000) is None
    assert c.layer == 2


def test_lasting_heavy_loss_at_the_lowest_layer_stops_video() -> None:
    c = controller(initial=2, cap=2)
    decision = None
    for step in range(12):
        t = step * 0.5
        c.report(t, 1000 + 40 * step, 10 * step)  # 25 % lost, report after report
        decision = c.update(t, remb=None, sent_bps=190_000) or decision
    assert decision is not None and decision.layer is None
    assert c.layer is None


def test_a_lossy_lowest_layer_that_fits_keeps_playing() -> None:
    c = controller(initial=2, cap=2)
    for step in range(20):
        t = step * 0.5
        c.report(t, 1000 + 40 * step, 5 * step)  # 12 % lost: a poor line, but video fits
        assert c.update(t, remb=None, sent_bps=190_000) is None
    assert c.layer == 2


def test_a_deep_remb_drop_counts_at_once() -> None:
    c = controller()
    c.report(0.0, 1000, 0)
    c.update(0.0, remb=3_000_000, sent_bps=1_500_000)
    c.report(1.0, 1150, 0)
    decision = c.update(1.0, remb=400_000, sent_bps=1_500_000)
    assert decision is not None and decision.layer == 2


def test_a_browsers_low_remb_alone_goes_to_the_lowest_layer_but_never_pauses_video() -> None:
    # Chromium on a busy classroom PC, on a line with room: its REMB sinks to 75
    # kbit/s, and nothing is lost or queued
    c = controller()
    seq, layers = 1000, set()
    for t in range(30):
        seq += 50
        c.report(float(t), seq, 0, delay=0.02)
        c.update(float(t), remb=75_000, sent_bps=RATES[c.layer] if c.layer is not None else 0)
        layers.add(c.layer)
    assert layers == {2}, "video paused on REMB alone"
    # the same REMB with a tenth of the packets lost pauses it
    lossy = controller()
    seq, paused = 1000, False
    for t in range(30):
        seq += 50
        lossy.report(float(t), seq, 5 * t, delay=0.02)
        lossy.update(float(t), remb=75_000, sent_bps=RATES[lossy.layer or 0])
        paused = paused or lossy.layer is None
    assert paused


def test_a_browsers_low_remb_at_the_start_leaves_no_ceiling() -> None:
    # Chromium's REMB ramps from low: 233 kbit/s 4 s into a 1 Mbit/s line, with
    # nothing lost or queued. It goes down, and pads for 360p after the hold, where a
    # ceiling of 233 kbit/s held it off for a minute.
    c = controller()
    c.can_pad = True
    seq, t, decision = 1000, 0.0, None
    while t < 5:
        seq += 50
        c.report(t, seq, 0, delay=0.02)
        decision = c.update(t, remb=233_000, sent_bps=823_000) or decision
        t += 0.5
    assert decision is not None and decision.layer == 2
    assert c.ceiling(t) is None
    while not c.padding_bps and t < 30:
        seq += 20
        c.report(t, seq, 0, delay=0.02)
        c.update(t, remb=330_000, sent_bps=190_000)
        t += 0.5
    assert c.padding_bps, "no probe for 360p"
    assert t < 20, f"padded only at {t:.1f} s"


def test_a_growing_queue_is_congestion_even_without_loss() -> None:
    c = controller()
    for t in range(5):
        c.report(float(t), 1000 + 150 * t, 0, rtt=0.02)
        assert c.update(float(t), remb=3_000_000, sent_bps=1_500_000) is None
    c.report(5.0, 1750, 0, rtt=0.25)  # one keyframe fills the shaper for a moment
    assert c.update(5.0, remb=3_000_000, sent_bps=1_500_000) is None
    c.report(6.0, 1900, 0, rtt=0.02)  # and it drains
    assert c.update(6.0, remb=3_000_000, sent_bps=1_500_000) is None
    decision: Decision | None = None
    for n in (1, 2, 3):  # now the queue stays: +230 ms report after report
        now = 6.0 + n
        c.report(now, 1900 + 150 * n, 0, rtt=0.25)
        decision = c.update(now, remb=3_000_000, sent_bps=1_500_000) or decision
    assert decision is not None and decision.layer == 1
    assert "queue" in decision.reason


def test_an_aiortc_receivers_low_remb_alone_is_not_congestion() -> None:
    c = controller()
    for t in range(10):
        c.report(float(t), 1000 + 150 * t, 0, rtt=0.01)
        # a Python classroom's REMB ramps slowly and lags what it is sent
        assert c.update(float(t), remb=200_000, sent_bps=1_500_000, shared=False) is None
    assert c.layer == 0


def test_one_burst_of_loss_does_not_cascade_down_to_audio_only() -> None:
    c = controller()
    c.report(0.0, 1000, 0)
    c.update(0.0, remb=None, sent_bps=1_500_000)
    c.report(1.0, 1100, 30)  # 30 % lost while on the top layer
    decision = c.update(1.0, remb=None, sent_bps=1_500_000)
    assert decision is not None and decision.layer == 1
    # the next report still shows the old layer's losses in its window
    c.report(1.5, 1140, 42)
    assert c.update(1.5, remb=None, sent_bps=450_000) is None, "cascaded within the settle"
    assert c.layer == 1


def test_a_few_packets_do_not_make_a_loss_rate() -> None:
    c = controller()
    c.report(0.0, 1000, 0)
    c.report(1.0, 1003, 1)  # one of three: not "33 % loss"
    assert c.loss == 0.0


def test_a_subscriber_that_starts_low_stays_there_a_while_before_probing() -> None:
    c = controller(initial=2)  # the line check said 180p
    assert c.update(0.0, remb=None, sent_bps=150_000) is None
    assert c.update(2.0, remb=None, sent_bps=150_000) is None
    decision = c.update(4.5, remb=None, sent_bps=150_000)
    assert decision is not None and decision.layer == 1


def test_no_probe_while_remb_says_the_line_is_full() -> None:
    c = controller(initial=2, cap=0)
    for step in range(40):
        t = step * 0.5
        c.report(t, 1000 + 20 * step, 0)
        # REMB sits at what arrives: the line has no room for a layer three times bigger
        assert c.update(t, remb=160_000, sent_bps=155_000) is None
    assert c.layer == 2
    c.report(21.0, 1900, 0)
    decision = c.update(21.0, remb=250_000, sent_bps=155_000)  # room now
    assert decision is not None and decision.layer == 1


def test_a_line_the_top_layer_flooded_is_not_probed_above_what_got_through_for_a_while() -> None:
    # A 300 kbit/s line: the top layer loses 80% of its packets. Down to 180p; the
    # 360p layer (450 kbit/s + audio) is well above what got through, so no probe
    # for tens of seconds, while the line plays 180p cleanly.
    c = controller()
    seq, lost, t = 1000, 0, 0.0
    ups: list[float] = []
    while t < 90:
        seq += 50
        if c.layer == 0:
            lost += 40
        elif c.layer == 1:
            lost += 20
        c.report(t, seq, lost)
        sent = {0: 1_500_000, 1: 450_000, 2: 150_000}[c.layer or 2]
        # REMB climbs to 1.5 times what arrives (aiortc's and Chromium's alike)
        remb = 1.5 * min(sent, 300_000) + 10_000
        decision = c.update(t, remb=remb, sent_bps=sent, shared=False)
        if decision is not None and decision.layer is not None and decision.layer < 2:
            ups.append(t)
        t += 0.5
    assert ups, "the ceiling is forgotten in the end"
    # the ceiling had to grow from what got through (300k) to 450k: 60 s doubling
    assert ups[0] > 30, f"probed 360p {ups[0]:.1f} s after the flood"


def paused_on_180p_by_heavy_loss() -> tuple[LayerController, float, int, int]:
    """A controller on 180p whose line (100 kbit/s) loses half of it until video
    pauses: (the controller, the time, the sequence number, the packets lost)."""
    c = controller(initial=2)
    c.report(0.0, 1000, 0)
    c.update(0.0, remb=None, sent_bps=150_000)
    seq, lost = 1000, 0
    t = 1.0
    while c.layer is not None and t < 20:
        seq += 20
        lost += 10
        c.report(t, seq, lost)
        c.update(t, remb=None, sent_bps=150_000)
        t += 0.5
    assert c.layer is None
    return c, t, seq, lost


def back_from_pause(c: LayerController, t: float, seq: int, lost: int) -> float | None:
    """When video comes back to 180p, from `t` on, on a line that is fine again
    (nothing sent while paused); None if not within 40 s."""
    start = t
    while t < start + 40:
        c.report(t, seq, lost)
        decision = c.update(t, remb=None, sent_bps=0)
        if decision is not None and decision.layer == 2:
            return t
        t += 0.5
    return None


def test_video_comes_back_to_the_lowest_layer_whatever_the_ceiling() -> None:
    c, t, seq, lost = paused_on_180p_by_heavy_loss()
    back = back_from_pause(c, t, seq, lost)
    # no longer than the hold after congestion, although 180p is above the ceiling
    assert back is not None and back - t <= 10.5, back


def test_the_tail_lost_before_a_pause_does_not_pause_video_again_on_resuming() -> None:
    c, t, seq, lost = paused_on_180p_by_heavy_loss()
    while c.layer is None and t < 60:  # nothing sent, nothing new reported
        c.report(t, seq, lost)
        c.update(t, remb=None, sent_bps=0)
        t += 0.5
    assert c.layer == 2, "the line recovered: video resumes"
    # The first report since resuming reveals the 30 packets the flooded line
    # dropped at the end, before the pause (a gap shows only once a later packet
    # arrives); after it, the recovered line loses nothing.
    seq += 40
    lost += 30
    layers = []
    for _ in range(20):
        c.report(t, seq, lost)
        decision = c.update(t, remb=None, sent_bps=150_000)
        if decision is not None:
            layers.append(decision.layer)
        seq += 20
        t += 0.5
    assert c.layer == 2 and None not in layers, layers


def test_failed_probes_between_layers_do_not_delay_video_coming_back_from_a_pause() -> None:
    c = controller(initial=1)
    t, seq, lost = 0.0, 1000, 0
    while t < 90:  # the top layer does not fit: its probes fail and the hold doubles
        seq += 50
        if c.layer == 0:
            lost += 10
        c.report(t, seq, lost)
        c.update(t, remb=None, sent_bps=1_500_000 if c.layer == 0 else 450_000)
        t += 0.5
    assert c._hold > 10.0  # doubled past the hold after congestion
    while c.layer is not None and t < 120:  # then the line collapses: video pauses
        seq += 20
        lost += 15
        c.report(t, seq, lost)
        c.update(t, remb=None, sent_bps=450_000 if c.layer == 1 else 150_000)
        t += 0.5
    assert c.layer is None
    back = back_from_pause(c, t, seq, lost)
    assert back is not None and back - t <= 10.5, (back, t)


def test_a_queue_building_over_two_reports_is_congestion_before_any_loss() -> None:
    c = controller()
    for t in range(5):
        c.report(float(t), 1000 + 150 * t, 0, rtt=0.002)
        assert c.update(float(t), remb=900_000, sent_bps=1_000_000, shared=False) is None
    # the top layer climbs past a 1 Mbit/s line: +96 ms, then +97 ms (measured)
    c.report(5.0, 1750, 0, rtt=0.098)
    assert c.update(5.0, remb=900_000, sent_bps=1_000_000, shared=False) is None
    c.report(6.0, 1900, 0, rtt=0.099)
    decision = c.update(6.0, remb=900_000, sent_bps=1_000_000, shared=False)
    assert decision is not None and decision.layer == 1 and "queue" in decision.reason


def test_a_report_that_waited_for_the_next_frame_is_not_a_queue() -> None:
    # 180p at 15 fps: a report written just before the next frame arrived reads up
    # to 67 ms after the newest packet it acknowledges, and twice in a row is chance
    c = controller(initial=2, cap=2)
    seq = 1000
    for t in range(6):
        seq += 15
        c.report(float(t), seq, 0, delay=0.02, slack=0.0)
        c.update(float(t), remb=None, sent_bps=150_000)
    for now in (6.0, 7.0, 8.0):
        seq += 15
        c.report(now, seq, 0, delay=0.02 + 0.066, slack=0.067)
        c.update(now, remb=None, sent_bps=150_000)
        assert not c.congested, c.why
    assert c.queue_building == 0
    # a queue that grows past the frame's gap still shows, less that gap
    c.report(9.0, seq + 15, 0, delay=0.02 + 0.3, slack=0.067)
    assert abs(c.queue_now - (0.3 - 0.067)) < 1e-6


def test_the_joins_burst_lost_on_a_slow_line_goes_to_the_lowest_layer_not_audio_only() -> None:
    c = controller()
    c.report(0.0, 1000, 0)
    c.update(0.0, remb=None, sent_bps=520_000)
    c.report(1.5, 1100, 82)  # the replayed keyframe and what followed, mostly lost
    decision = c.update(1.5, remb=None, sent_bps=520_000)
    assert decision is not None and decision.layer == 2, "paused on the join's burst"


def test_heavy_loss_in_nacks_takes_the_top_layer_to_the_lowest_before_any_report() -> None:
    c = controller()
    c.report(0.0, 1000, 0)
    c.update(0.0, remb=None, sent_bps=1_400_000)
    c.report(10.0, 2300, 0)
    assert c.update(10.0, remb=None, sent_bps=1_400_000) is None
    # the line falls to 600 kbit/s at 10.1 s: NACKs come a round trip later
    assert not c.nacked(10.45, 50_000, 0)
    assert not c.nacked(10.55, 50_012, 12), "one NACK burst, 0.1 s: too soon to judge"
    assert c.nacked(10.8, 50_050, 20)
    decision = c.update(10.8, remb=None, sent_bps=1_400_000)
    assert decision is not None and decision.layer == 2 and "NACKs" in decision.reason


def test_nacks_on_a_lossy_line_or_below_the_top_do_not_move_the_layer() -> None:
    c = controller()
    c.report(0.0, 1000, 0)
    c.update(0.0, remb=None, sent_bps=1_400_000)
    # 3 % random loss on the top layer: a NACK now and then
    for n in range(20):
        assert not c.nacked(1.0 + 0.1 * n, 50_000 + 12 * n, n // 3)
    assert c.update(3.0, remb=None, sent_bps=1_400_000) is None
    low = controller(initial=1)
    low.report(0.0, 1000, 0)
    low.update(0.0, remb=None, sent_bps=450_000)
    assert not low.nacked(1.0, 9_000, 0)
    assert not low.nacked(1.5, 9_020, 15)
    assert low.update(1.5, remb=None, sent_bps=450_000) is None


@pytest.mark.parametrize(
    ("sent_bps", "nacked"),
    [(520_000, 22), (0, 60)],
    ids=["55 % NACKed", "NACKed whole, before a rate was measured"],
)
def test_a_line_the_top_flooded_by_nacks_is_not_padded_for_360p_soon_after(
    sent_bps: float, nacked: int
) -> None:
    c = controller()
    c.can_pad = True
    c.report(0.0, 1000, 0, delay=0.02)
    c.update(0.0, remb=None, sent_bps=sent_bps)
    c.nacked(6.0, 5_000, 0)
    c.nacked(6.5, 5_040, nacked)  # a 300 kbit/s line under a 520 kbit/s top
    decision = c.update(6.5, remb=None, sent_bps=sent_bps)
    assert decision is not None and decision.layer == 2
    seq, t = 1100, 6.5
    while t < 45:  # 180p plays cleanly
        t += 0.5
        seq += 10
        c.report(t, seq, 0, delay=0.02)
        assert c.update(t, remb=None, sent_bps=150_000) is None
        assert not c.padding_bps, f"padded for 360p at {t:.1f} s"


def test_nacks_for_the_joins_burst_do_not_move_the_top_layer() -> None:
    c = controller()
    c.report(0.0, 1000, 0)
    c.update(0.0, remb=None, sent_bps=500_000)
    # the cached keyframe and what followed it (96 KB at once) overflow the queue
    assert not c.nacked(1.2, 300, 0)
    assert not c.nacked(1.6, 340, 30)
    assert c.update(1.6, remb=None, sent_bps=500_000) is None
    assert c.layer == 0 and c.ceiling(1.6) is None
