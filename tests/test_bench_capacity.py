"""The rural benchmark's figures (bench/capacity.py) on made-up samples."""

from bench.capacity import (
    Sample,
    Schedule,
    climb_after_rises,
    keyframe_rates,
    settle_after_drops,
)

RATES = [1_400_000.0, 450_000.0, 150_000.0]
NAMES = ["top", "360p", "180p"]


def sample(
    t: float, capacity: int, offered: float, layer: int | None, keyframes: int = 0
) -> Sample:
    return Sample(
        t=t,
        capacity_bps=capacity,
        offered_bps=offered,
        delivered_bps=min(offered, capacity),
        estimate_bps=None,
        remb_bps=None,
        loss=0.0,
        layer=NAMES[layer] if layer is not None else None,
        layer_index=layer,
        layer_rates=RATES,
        audio_bps=40_000.0,
        keyframes_to_teacher=keyframes,
        keyframes_from_classrooms=keyframes,
    )


def test_the_rfc_8867_profile_parses_with_units() -> None:
    schedule = Schedule.parse("0:1M,40:2.5M,60:600k,80:1M", 100)
    assert schedule.steps == ((0, 1_000_000), (40, 2_500_000), (60, 600_000), (80, 1_000_000))
    assert schedule.rate_at(59.9) == 2_500_000 and schedule.rate_at(60) == 600_000
    assert schedule.scaled(0.5).steps[1] == (20, 2_500_000)


def test_settle_counts_until_the_offered_rate_stays_under_the_new_capacity() -> None:
    schedule = Schedule.parse("0:2.5M,10:600k", 20)
    samples = [sample(t / 2, 2_500_000, 1_500_000, 0) for t in range(20)]
    # after the drop: 1.5 s still over (one dip under that does not last), then under
    offered = [1_500_000, 500_000, 1_400_000, 900_000, 500_000, 520_000] + [500_000] * 14
    layers = [0, 0, 1, 1, 1, 1] + [1] * 14
    samples += [
        sample(10 + i / 2, 600_000, rate, layer)
        for i, (rate, layer) in enumerate(zip(offered, layers, strict=True))
    ]
    [drop] = settle_after_drops(schedule, samples)
    assert drop["settle_s"] == 2.0
    assert drop["first_switch_down_s"] == 1.0
    assert drop["already_under"] is False
    assert drop["layers"] == [[10.0, "top"], [11.0, "360p"]]


def test_climb_is_the_time_to_the_best_layer_that_fits() -> None:
    schedule = Schedule.parse("0:600k,10:2.5M", 30)
    samples = [sample(t / 2, 600_000, 200_000, 2) for t in range(20)]
    layers = [2] * 8 + [1] * 4 + [0, 1] + [1] * 2 + [0] * 24  # top once, then for good
    samples += [sample(10 + i / 2, 2_500_000, 500_000, layer) for i, layer in enumerate(layers)]
    [rise] = climb_after_rises(schedule, samples)
    assert rise["target_layer"] == 0  # 1.4 Mbps + audio fits 85% of 2.5 Mbps
    assert rise["first_reached_s"] == 6.0
    assert rise["climb_s"] == 8.0
    assert rise["share_on_target"] == 25 / 40


def test_keyframe_rates_find_the_busiest_second() -> None:
    counts = [0, 0, 1, 1, 2, 3, 3, 3, 3, 4]
    samples = [sample(i / 2, 1_000_000, 0, 0, keyframes=k) for i, k in enumerate(counts)]
    rates = keyframe_rates(samples)
    assert rates["to_teacher"] == 4
    assert rates["max_in_one_second"] == 2
    assert rates["per_second"] == round(4 / 4.5, 3)
