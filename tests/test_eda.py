"""EDA on generated data with known counts, sizes and pixel statistics; corrupt files listed, not fatal."""

import numpy as np
import pytest
from PIL import Image

from harness import eda
from harness.catalog import FASTVIT
from tests.conftest import harness_cli

pytestmark = pytest.mark.slow  # every test here trains or starts a process (make test-fast leaves them out)


@pytest.fixture
def known(tmp_path):
    """red: 3 images 40x30 of (200, 0, 0); blue: 2 images 20x20 of (0, 0, 100); one corrupt file."""
    root = tmp_path / "data"
    for name, count, size, colour in (("red", 3, (40, 30), (200, 0, 0)), ("blue", 2, (20, 20), (0, 0, 100))):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", size, colour).save(root / name / f"{i}.png")
    (root / "blue" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_counts_sizes_and_statistics_are_exact(known, tmp_path):
    survey = eda.run(known, tmp_path / "out", FASTVIT.recipe, "fastvit")
    assert survey.class_counts == {"blue": 3, "red": 3}
    assert survey.sizes == {(40, 30): 3, (20, 20): 2}
    assert survey.modes == {"RGB": 5} and survey.channels == {3: 5}
    assert [p.endswith("broken.jpg") for p, _ in survey.corrupt] == [True]
    red_pixels, blue_pixels = 3 * 40 * 30, 2 * 20 * 20
    total = red_pixels + blue_pixels
    assert survey.mean == pytest.approx((200 / 255 * red_pixels / total, 0.0, 100 / 255 * blue_pixels / total))
    p = red_pixels / total
    assert survey.std[0] == pytest.approx(200 / 255 * np.sqrt(p * (1 - p)))
    assert survey.histograms[0][200] == red_pixels and survey.histograms[2][100] == blue_pixels
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| 40x30 | 3 |" in report and "broken.jpg" in report
    assert [(r.name, r.p, r.draws) for r in survey.augmentations.rates] == [
        (a.name, a.kwargs["p"], 2000) for a in FASTVIT.recipe.train_augmentations
    ]
    assert survey.augmentations.consistent
    assert "| HorizontalFlip | 0.5 |" in report and "Un-augmented samples:" in report
    for figure in ("histograms.png", "samples.png", "augmentations.png"):
        assert (tmp_path / "out" / figure).read_bytes()[:4] == b"\x89PNG"


def test_eda_command(known, tmp_path):
    done = harness_cli("eda", known, "--out", tmp_path / "r")
    assert done.returncode == 0, done.stderr
    assert "6 images, 2 classes, 1 corrupt" in done.stdout
    # the measured apply rate of every EfficientNetV2 augmentation, next to its p
    for name in (
        "HorizontalFlip",
        "VerticalFlip",
        "Transpose",
        "RandomBrightnessContrast",
        "RGBShift",
        "OpticalDistortion",
        "GridDistortion",
    ):
        assert f"| {name} | 0.5 | " in done.stdout
    assert "expected 0.78% when every transform draws on its own: consistent" in done.stdout
