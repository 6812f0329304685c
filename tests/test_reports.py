"""Reports from hand-made records: every table, in Markdown, CSV and one self-contained HTML page."""

import re
from urllib.parse import unquote

import pytest

from harness.catalog import EFFICIENTNETV2, FASTVIT, make_spec
from harness.results import report
from harness.results.plots import plot_curves
from harness.results.record import RunResult
from harness.results.stats import difference, mean_interval
from harness.results.tables import (
    cases_table,
    not_comparable_to_published,
    ours_vs_published,
    precision_devices,
    pretrained_vs_random,
    workflow_tables,
)
from harness.spec import BenchmarkSpec
from tests.conftest import harness_cli


def record(spec, acc, loss, images_per_s=100.0, val_accs=(0.5, 0.9), run_id=None) -> RunResult:
    history = [
        {"epoch": e + 1, "epoch_time": 10.0, "val_acc": a, "val_loss": loss, "train_loss": loss, "train_acc": a}
        for e, a in enumerate(val_accs)
    ]
    return RunResult(
        run_id or spec.id,
        spec.to_dict(),
        history,
        {"test_acc": acc, "test_loss": loss, "test_f1": acc - 0.01, "test_top3": 0.99, "test_top5": 1.0},
        123.0,
        images_per_s,
        {"torch": "2.x", "device": "cpu (x86_64, 2 cores)", "git_commit": "abc123"},
        "2026-11-21T00:00:00+00:00",
    )


@pytest.fixture
def records():
    pre = make_spec(EFFICIENTNETV2, profile="full", weights="pretrained", num_classes=6)
    rnd = make_spec(EFFICIENTNETV2, profile="full", weights="random", num_classes=6)
    fast = make_spec(FASTVIT, profile="full", weights="pretrained", precision="bf16-mixed", devices=2, num_classes=8)
    return [
        record(pre, 0.95, 0.12),
        record(rnd, 0.80, 0.45),
        record(fast, 0.93, 0.25, images_per_s=812.5, val_accs=(0.5, 0.95)),
    ]


def test_pretrained_and_random_side_by_side_with_difference(records):
    (row,) = pretrained_vs_random(records).rows
    assert row[:6] == ("tf_efficientnetv2_b2", "imagefolder", "full", "poutyne", "32-true", "1")
    assert row[7:11] == ("1/1", "95.00", "80.00", "+15.00") and row[13] == "-0.3300"


def test_pretrained_vs_random_pairs_only_runs_that_differ_in_weights_alone():
    smoke_pre = make_spec(EFFICIENTNETV2, profile="smoke", weights="pretrained", num_classes=6)
    full_rnd = make_spec(EFFICIENTNETV2, profile="full", weights="random", num_classes=6)
    other_lr = smoke_pre.replace(weights="random").with_recipe(lr=1e-2)
    assert (
        pretrained_vs_random([record(smoke_pre, 0.6, 1.0), record(full_rnd, 0.8, 0.4), record(other_lr, 0.4, 2.0)]).rows
        == ()
    )
    repeats = [
        record(smoke_pre, 0.6, 1.0, run_id="p1"),
        record(smoke_pre, 0.7, 1.0, run_id="p2"),
        record(smoke_pre.replace(weights="random"), 0.4, 2.0),
    ]
    (row,) = pretrained_vs_random(repeats).rows
    assert row[7:11] == ("2/1", "65.00 ± 7.07 (n=2)", "40.00", "+25.00")


def seeded(spec, accs, losses, weights="pretrained"):
    """One record per seed (42, 43, ...) of `spec` with the given test accuracies and losses."""
    specs = spec.replace(weights=weights).repeats(len(accs))
    return [
        record(s, a, loss, run_id=f"{s.id}-s{s.recipe.seed}") for s, a, loss in zip(specs, accs, losses, strict=True)
    ]


def test_cases_pool_their_seeds_with_mean_std_and_the_published_figure_beside():
    full = make_spec(EFFICIENTNETV2, profile="full", weights="pretrained", num_classes=6)
    smoke = make_spec(EFFICIENTNETV2, profile="smoke", weights="pretrained", num_classes=6)
    runs = seeded(full, (0.93, 0.94, 0.95), (0.15, 0.14, 0.16)) + seeded(smoke, (0.6,), (1.0,))
    table = cases_table(runs)
    rows = {row[0]: row for row in table.rows}
    assert len(rows) == 2  # three seeds of one experiment are one row
    case = rows[full.id]
    assert case[2:6] == ("42,43,44", "3", "94.00 ± 1.00 (n=3)", "0.1500 ± 0.0100 (n=3)")
    assert case[-2:] == ("93.80", "yes")  # 93.802 lies inside 94.00 ± 1.00
    assert rows[smoke.id][4] == "60.00" and rows[smoke.id][-1].startswith("not comparable: smoke profile")
    far = cases_table(seeded(full, (0.97, 0.975, 0.98), (0.1, 0.1, 0.1)))
    assert far.rows[0][-1] == "no"


def test_pretrained_vs_random_over_seeds_gives_a_welch_interval():
    spec = make_spec(EFFICIENTNETV2, profile="smoke", weights="pretrained", num_classes=6)
    runs = seeded(spec, (0.60, 0.70, 0.65), (1.0, 1.1, 0.9)) + seeded(
        spec, (0.40, 0.45, 0.50), (1.4, 1.5, 1.3), weights="random"
    )
    (row,) = pretrained_vs_random(runs).rows
    # Welch by hand: both variances 0.0025, n 3 -> se 0.040825, df 4, t(0.975, 4) = 2.776445: 20 ± 11.33 points
    assert row[7] == "3/3" and row[10].startswith("+20.00 [+8.67, +31.33] p=")
    assert row[13].startswith("-0.4000 [")


def test_welch_difference_matches_the_hand_computation():
    diff = difference([0.60, 0.70, 0.65], [0.40, 0.45, 0.50])
    assert diff.estimate == pytest.approx(0.2) and diff.excludes_zero()
    assert (diff.low, diff.high) == pytest.approx((0.2 - 2.776445 * 0.0408248, 0.2 + 2.776445 * 0.0408248), abs=1e-5)
    assert not difference([0.6], [0.4]).repeated and difference([0.6], [0.4]).show(100) == "+20.00"


def test_mean_interval_matches_the_hand_computation():
    # mean 1.0, std 0.05, n 3 -> se 0.0288675, t(0.975, 2) = 4.302653
    assert mean_interval([0.95, 1.0, 1.05]) == pytest.approx(
        (1.0 - 4.302653 * 0.0288675, 1.0 + 4.302653 * 0.0288675), abs=1e-5
    )
    assert mean_interval([0.98]) is None and mean_interval([0.98, 0.98]) == (0.98, 0.98)


def test_ours_against_published_lists_reproductions_only(records):
    rows = {(r[0], r[1]): r for r in ours_vs_published(records).rows}
    pre, rnd, fast = (r.run_id for r in records)
    assert rows[(pre, "accuracy %")][2:] == ("95.00", "93.80", "+1.20")
    assert rows[(rnd, "loss")][2:] == ("0.4500", "0.4340", "+0.0160")
    assert rows[(fast, "top-3")][2:] == ("99.00", "99.88", "-0.88")
    assert rows[(fast, "loss")][2:] == ("0.2500", "0.2630", "-0.0130")


def test_smoke_and_changed_recipes_are_shown_apart_with_the_reason():
    smoke = make_spec(FASTVIT, profile="smoke", weights="pretrained", num_classes=8)
    short = make_spec(FASTVIT, profile="full", weights="pretrained", num_classes=8).with_recipe(epochs=2)
    runs = [record(smoke, 0.8, 0.6), record(short, 0.5, 1.2)]
    assert ours_vs_published(runs).rows == ()
    reasons = {r[0]: r[5] for r in not_comparable_to_published(runs).rows}
    assert reasons[smoke.id] == "smoke profile: generated data, 64 px, 4 epochs"
    assert reasons[short.id] == "recipe changed: epochs 2 (published 40)"


def test_precision_devices_rows_with_speed_and_a_named_target(records):
    rows = {r[0] + r[2] + r[3] + r[4]: r for r in precision_devices(records).rows}
    fast = rows["fastvitpretrainedbf16-mixed2"]
    assert fast[5:7] == ("64", "42") and fast[8] == "812.5" and fast[10] == "123.0"
    assert fast[11] == "92.37 % (published (fastvit, pretrained weights))"
    assert fast[12] == "epoch 2 (20s)"  # val acc 0.95 >= published 0.9237 first at epoch 2, after 2 x 10 s
    assert rows["efficientnetv2pretrained32-true1"][12] == "not reached"  # val acc 0.9 < published 0.93802
    assert rows["efficientnetv2random32-true1"][11:13] == (
        "80.80 % (published (efficientnetv2, random weights))",
        "epoch 2 (20s)",
    )


def test_no_target_on_a_users_own_data_unless_given(tiny_folder):
    from harness.cli.case import spec_from_args
    from harness.cli.parser import build_parser

    args = build_parser().parse_args(["run", "--data", str(tiny_folder), "--recipe", "fastvit"])
    spec, _ = spec_from_args(args)
    assert spec.target_accuracy is None
    (row,) = precision_devices([record(spec, 0.5, 1.0)]).rows
    assert row[11:13] == ("none (no published figure; give --target-acc)", "-")
    given, _ = spec_from_args(build_parser().parse_args(["run", "--data", str(tiny_folder), "--target-acc", "0.8"]))
    assert (given.target_accuracy, given.target_source) == (0.8, "--target-acc")


def test_workflow_tables_in_the_write_ups_shape(records):
    first, second = workflow_tables(records)
    assert first.columns == ("Model", "accuracy %", "loss") and len(first.rows) == 2
    assert second.columns == ("Model", "accuracy %", "loss", "F1", "top-3", "top-5")
    assert second.rows[0][1:] == ("93.00", "0.2500", "0.9200", "0.9900", "1.0000")


@pytest.mark.slow
def test_report_command_rebuilds_everything_from_records(records, tmp_path):
    for r in records:
        r.save(tmp_path / r.run_id, plot_curves)
    done = harness_cli("report", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Pretrained vs random weights" in done.stdout
    md = (tmp_path / "summary.md").read_text()
    for title in ("Runs and published figures", "Ours vs published", "Precision x devices", "the write-up's table"):
        assert title in md
    assert "published: efficientnetv2" in md and f"[plot]({records[0].run_id}/curves.png)" in md
    assert "- **git_commit**: abc123" in md and "- **column time to target**:" in md
    assert len((tmp_path / "summary.csv").read_text().splitlines()) == 1 + 3 + 3  # header, runs, published rows
    page = (tmp_path / "report.html").read_text()
    assert (
        page.count("data:image/png;base64,") == 3 + len(list((tmp_path / "figures").glob("*.png")))
        and "<script" not in page
        and 'src="http' not in page
    )
    assert (
        "[plot](" not in page
        and f"<a href='#curves-{records[0].run_id}'>plot</a>" in page
        and f"id='curves-{records[0].run_id}'" in page
    )
    for fact in (
        "<b>generated</b>",
        "<b>device</b>: cpu (x86_64, 2 cores)",
        "<b>torch</b>: 2.x",
        "<b>cuda</b>: none",
        "<b>column images/s</b>",
    ):
        assert fact in page


@pytest.mark.slow
def test_curve_links_resolve_from_another_output_folder(records, tmp_path):
    for r in records:
        r.save(tmp_path / "runs" / r.run_id, plot_curves)
    no_epochs = RunResult("empty", records[0].spec, [], records[0].test, 1.0, 0.0, {}, "2026-11-21T00:00:00+00:00")
    no_epochs.save(tmp_path / "runs" / "empty", plot_curves)
    done = harness_cli("report", tmp_path / "runs", "--out", tmp_path / "pub")
    assert done.returncode == 0, done.stderr
    md = (tmp_path / "pub" / "summary.md").read_text()
    assert (
        f"[plot](../runs/{records[0].run_id}/curves.png)" in md
        and (tmp_path / "pub" / f"../runs/{records[0].run_id}/curves.png").is_file()
    )
    assert "| empty |" in md and "[plot](../runs/empty/" not in md
    assert (tmp_path / "pub" / "report.html").read_text().count("data:image/png;base64,") == 3 + len(
        list((tmp_path / "pub" / "figures").glob("*.png"))
    )


def test_a_curve_link_resolves_when_the_dataset_name_has_spaces(records, tmp_path):
    """`--data "/data/kvasir stand in"` puts the space in the run id; the Markdown link broke at it."""
    spaced = record(BenchmarkSpec.from_dict(records[0].spec).replace(dataset="kvasir stand in"), 0.9, 0.3)
    assert " " in spaced.run_id
    spaced.save(tmp_path / "runs" / spaced.run_id, plot_curves)
    report.write([spaced], tmp_path / "runs", tmp_path / "pub")
    target = re.search(r"\[plot\]\(([^)\s]+)\)", (tmp_path / "pub" / "summary.md").read_text()).group(1)
    assert "%20" in target and (tmp_path / "pub" / unquote(target)).is_file()


@pytest.mark.slow
def test_report_of_an_empty_folder_is_a_clear_error(tmp_path):
    done = harness_cli("report", tmp_path)
    assert done.returncode == 2 and "no result records" in done.stderr


def test_files_are_written_by_report_write(records, tmp_path):
    tables = report.write(records, tmp_path)
    assert {t.title for t in tables} >= {"Pretrained vs random weights", "Ours vs published (reproductions)"}
