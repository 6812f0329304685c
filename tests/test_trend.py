"""The trend over nights: per case, each night's mean of accuracy and steady images/s, the baseline beside."""

from harness.catalog import EFFICIENTNETV2, make_spec
from harness.results import report, trend
from tests.test_reports import record


def _run(spec, acc, images_per_s=100.0, run_id=None):
    run = record(spec, acc, 0.5, images_per_s=images_per_s, run_id=run_id)
    run.steady_images_per_s = images_per_s
    return run


def _night(root, name, runs):
    for run in runs:
        run.save(root / name / "records" / run.run_id)


def test_each_night_is_a_point_per_case_and_the_baseline_is_marked(tmp_path):
    pre = make_spec(EFFICIENTNETV2, profile="smoke", weights="pretrained", num_classes=6)
    gone = make_spec(EFFICIENTNETV2, profile="smoke", weights="random", num_classes=6)
    nights = tmp_path / "nightly"
    _night(nights, "2026-11-20", [_run(pre, 0.80), _run(gone, 0.5)])
    _night(nights, "2026-11-21", [])  # a night whose cases all failed: a gap, not an error
    (nights / "2026-11-21" / "records").mkdir(parents=True)
    seeds = pre.repeats(2)
    _night(nights, "2026-11-22", [_run(seeds[0], 0.70, 90.0, run_id="a"), _run(seeds[1], 0.90, 110.0, run_id="b")])
    (case,) = trend.of_nights(nights, baseline=nights / "2026-11-20")  # the newest night's cases only
    assert case.case.startswith(pre.id + "@") and case.nights == ("2026-11-20", "2026-11-21", "2026-11-22")
    assert case.values["test_acc"] == (0.80, None, 0.80)  # the last night: the mean of its two seeds
    assert case.values["steady_images_per_s"] == (100.0, None, 100.0)
    assert case.baseline == {"test_acc": 0.80, "steady_images_per_s": 100.0}
    assert [t.nights for t in trend.of_nights(nights, nights=2)] == [("2026-11-21", "2026-11-22")]


def test_the_report_embeds_one_trend_plot_per_case(tmp_path):
    spec = make_spec(EFFICIENTNETV2, profile="smoke", weights="pretrained", num_classes=6)
    nights = tmp_path / "nightly"
    for name, acc in (("2026-11-21", 0.8), ("2026-11-22", 0.7)):
        _night(nights, name, [_run(spec, acc)])
    tonight = nights / "2026-11-22" / "records"
    report.write([_run(spec, 0.7)], tonight, trend=trend.of_nights(nights))
    (png,) = (tonight / "trend").glob("*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tonight / "report.html").read_text()
    assert (
        "Trend over the last 2 night(s)" in page
        and "2026-11-21 to 2026-11-22" in page
        and f"alt='trend of {spec.id}@" in page
    )
