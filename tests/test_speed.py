"""Speed from history rows: the overall figure weighs epochs by time; the steady one drops the warm-up."""

from __future__ import annotations

import pytest

from harness.results.speed import (
    overall_images_per_s,
    steady_data_wait_share,
    steady_images_per_s,
)


def rows(*figures: tuple[float, float]) -> list[dict[str, float]]:
    return [{"epoch": i + 1, "train_time": seconds, "images_per_s": rate} for i, (seconds, rate) in enumerate(figures)]


def test_a_slow_first_epoch_moves_the_overall_figure_not_the_steady_one():
    history = rows((10.0, 12.5), (1.0, 110.0), (1.0, 114.0), (1.0, 113.0))  # 125 + 337 images in 13 s
    assert overall_images_per_s(history) == pytest.approx((125 + 337) / 13)
    assert steady_images_per_s(history) == pytest.approx(113.0)


def test_one_epoch_is_its_own_steady_state_and_no_figures_give_zero():
    assert steady_images_per_s(rows((2.0, 50.0))) == overall_images_per_s(rows((2.0, 50.0))) == 50.0
    assert steady_images_per_s([{"epoch": 1, "epoch_time": 3.0}]) == overall_images_per_s([]) == 0.0


def test_data_wait_share_covers_the_steady_epochs_and_is_none_before_it_was_measured():
    history = [
        {**row, "data_wait_time": wait}
        for row, wait in zip(rows((10.0, 12.5), (2.0, 110.0), (2.0, 114.0)), (8.0, 0.5, 0.1), strict=True)
    ]
    assert steady_data_wait_share(history) == pytest.approx(0.6 / 4.0)
    assert steady_data_wait_share(rows((2.0, 50.0))) is None
