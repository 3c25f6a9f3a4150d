import pytest

from fxcap.capture.layout import TRAINABLE_KINDS
from fxcap.dataset import SPLITS, SplitConfig, plan_splits
from fxcap.dataset.testing import make_dummy_signal
from fxcap.errors import DatasetError


@pytest.fixture(scope="module")
def layout():
    return make_dummy_signal(48000, 20.0, seed=3).layout


@pytest.mark.parametrize("mode", ["interleaved", "contiguous"])
def test_segments_stay_inside_trainable_regions_and_never_overlap(layout, mode):
    plan = plan_splits(layout, SplitConfig(segment_seconds=0.5, mode=mode))
    regions = {r.name: r for r in layout.regions}
    previous_stop = 0
    for segment in plan.segments:
        region = regions[segment.region]
        assert region.kind in TRAINABLE_KINDS
        assert region.start <= segment.start < segment.stop <= region.stop
        assert segment.start >= previous_stop
        previous_stop = segment.stop
    assert [s.index for s in plan.segments] == list(range(len(plan.segments)))
    trainable = sum(r.length for r in layout.regions if r.kind in TRAINABLE_KINDS)
    assert sum(s.num_samples for s in plan.segments) + plan.dropped_samples == trainable
    assert {"validation_a", "validation_b", "calibration", "silence", "sync_start"} <= set(plan.excluded_regions)


@pytest.mark.parametrize("mode", ["interleaved", "contiguous"])
def test_split_fractions_are_met_in_samples(layout, mode):
    plan = plan_splits(layout, SplitConfig(segment_seconds=0.25, mode=mode))
    total = sum(plan.samples(s) for s in SPLITS)
    for split, fraction in SplitConfig().fractions.items():
        assert plan.samples(split) / total == pytest.approx(fraction, abs=0.03)


def test_interleaved_gives_every_split_every_kind_of_material(layout):
    plan = plan_splits(layout, SplitConfig(segment_seconds=0.2))
    for split in SPLITS:
        assert {s.kind for s in plan.of_split(split)} == {"sweep", "noise", "program"}


def test_contiguous_mode_keeps_splits_in_time_order(layout):
    plan = plan_splits(layout, SplitConfig(segment_seconds=0.5, mode="contiguous"))
    order = [SPLITS.index(s.split) for s in plan.segments]
    assert order == sorted(order)


def test_plan_is_deterministic(layout):
    a = plan_splits(layout, SplitConfig(segment_seconds=0.3))
    b = plan_splits(layout, SplitConfig(segment_seconds=0.3))
    assert a.to_dict() == b.to_dict()


def test_bad_configs_are_clear_errors(layout):
    with pytest.raises(DatasetError, match="sum to 1"):
        SplitConfig(train=0.5, valid=0.1, test=0.1)
    with pytest.raises(DatasetError, match="split mode"):
        SplitConfig(mode="random")
    with pytest.raises(DatasetError, match="shorter --segment-seconds"):
        plan_splits(make_dummy_signal(48000, 1.0).layout, SplitConfig(segment_seconds=5.0))
    assert SplitConfig.parse_fractions("60/10/30") == SplitConfig()
    assert SplitConfig.parse_fractions("0.8/0.1/0.1").train == pytest.approx(0.8)
    with pytest.raises(DatasetError, match="sums to 10; give percentages"):
        SplitConfig.parse_fractions("8/1/1")  # refused, not rescaled
    with pytest.raises(DatasetError, match="60/10/30"):
        SplitConfig.parse_fractions("sixty")
