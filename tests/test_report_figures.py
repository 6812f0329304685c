"""The report's comparison figures, from hand-made records, and the page in a real headless browser."""

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from harness.catalog import EFFICIENTNETV2, FASTVIT, make_spec
from harness.results import figures, report
from tests.test_reports import record

CHROMIUM = next((path for path in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if path), None)


@pytest.fixture
def records():
    pre = make_spec(EFFICIENTNETV2, profile="full", weights="pretrained", num_classes=6)
    rnd = pre.replace(weights="random")
    lightning = make_spec(FASTVIT, profile="full", weights="pretrained", precision="bf16-mixed", num_classes=8)
    poutyne = lightning.replace(engine="poutyne")
    runs = [
        record(pre, 0.95, 0.12, val_accs=(0.6, 0.9, 0.94)),
        record(pre.with_recipe(seed=43), 0.93, 0.14, run_id="pre-s43", val_accs=(0.5, 0.88, 0.93)),
        record(rnd, 0.80, 0.45, val_accs=(0.3, 0.6, 0.79)),
        record(lightning, 0.92, 0.26),
        record(poutyne, 0.91, 0.27),
    ]
    for run in runs:
        run.steady_images_per_s = run.train_images_per_s
        run.target = {"accuracy": 0.9, "source": "published"}
    return runs


def test_every_comparison_the_records_allow_is_drawn(records, tmp_path):
    made = dict(figures.write_all(records, tmp_path / "figures"))
    assert sorted(made) == [
        "Ours vs published",
        "Poutyne vs Lightning: fastvit_t8 kvasir bf16 1dev pretrained full profile",
        "Precision x devices: efficientnetv2",
        "Precision x devices: fastvit",
        "Pretrained vs random weights: tf_efficientnetv2_b2 imagefolder poutyne 32true 1dev full profile",
    ]
    for png in made.values():
        pixels = np.asarray(Image.open(png).convert("RGB"))
        assert pixels.shape[1] >= 800 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # drawn, not blank


def test_weights_keep_their_colours_and_epochs_are_whole_numbers(records, tmp_path):
    (group,) = figures.differing_in(records, "weights")
    figure = figures.curves_figure(group, "weights")
    loss_axis, acc_axis = figure.axes
    assert {line.get_color() for line in loss_axis.lines} == {"tab:blue", "tab:orange"}
    assert {line.get_label() for line in loss_axis.lines} >= {"pretrained (n=2)", "random (n=1)"}
    assert [line.get_ydata()[0] for line in acc_axis.lines if line.get_linestyle() == "--"] == [0.9]  # the target
    for axis in figure.axes:
        assert all(float(tick).is_integer() for tick in axis.get_xticks())


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None,
    reason=(
        "no Chromium here (Debian: apt-get install chromium); the page is checked in a real headless browser where"
        " there is one"
    ),
)
def test_the_report_page_renders_in_headless_chromium_with_its_figures(records, tmp_path):
    report.write(records, tmp_path / "records", tmp_path / "out")
    page = tmp_path / "out" / "report.html"
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1280,6000",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    blue = (np.abs(pixels - (31, 119, 180)).sum(axis=1) < 30).sum()
    assert blue > 2000, "the embedded figures did not render"  # the bars and curves of pretrained runs
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert dom.count("<img") >= 5 and "<h2>Comparisons</h2>" in dom
