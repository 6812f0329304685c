"""Byte-identical images are found before training: `run` says how many and where in one line, the
record keeps the counts, `eda` lists them. (Ten copies placed in a second class went unnoticed;
five straddled split parts, four with a copy in the test part.)"""

from __future__ import annotations

import shutil

from harness import eda, runner
from harness.catalog import FASTVIT
from tests.conftest import make_image_folder, tiny_spec
from tests.test_fail_fast import run_cli, tiny_run_args


def _with_copies(tmp_path):
    folder = make_image_folder(tmp_path / "data", {"a": 20, "b": 20})
    for i, path in enumerate(sorted((folder / "a").iterdir())[:10]):
        shutil.copyfile(path, folder / "b" / f"copy{i}.png")
    return folder


def test_run_prints_one_line_and_the_record_keeps_the_counts(tmp_path, capsys):
    folder = _with_copies(tmp_path)
    code, out, err = run_cli(capsys, *tiny_run_args(folder, tmp_path))
    assert code == 0, err
    (line,) = [line for line in out.splitlines() if line.startswith("[trainbench] duplicates: ")]
    assert line.startswith(
        "[trainbench] duplicates: 20 byte-identical images in 10 groups: 10 across classes (label conflicts), "
    )
    record_path = next(line.removeprefix("record: ") for line in out.splitlines() if line.startswith("record: "))
    from harness.results.record import RunResult

    counts = RunResult.load(record_path).data["duplicates"]
    assert (counts["groups"], counts["files"], counts["across_classes"], counts["within_one_class"]) == (10, 20, 10, 0)
    assert f"{counts['across_parts']} across split parts ({counts['with_a_copy_in_test']} with a copy in test)" in line
    assert 0 < counts["across_parts"] <= 10 and len(counts["examples"]) == 3


def test_a_dataset_without_copies_says_nothing_and_records_none(tiny_folder, settings, capsys):
    record = runner.run(tiny_spec(), settings.replace(data_root=tiny_folder))
    assert record.data["duplicates"] is None and "duplicates:" not in capsys.readouterr().out


def test_eda_lists_every_group_within_and_across_classes_and_parts(tmp_path):
    folder = _with_copies(tmp_path)
    (folder / "a" / "twin.png").write_bytes((folder / "a" / "000.png").read_bytes())  # a copy within its own class too
    survey = eda.run(folder, tmp_path / "out", FASTVIT.recipe, "fastvit", draws=10)
    found = survey.duplicates
    assert (found["groups"], found["files"], found["across_classes"], found["within_one_class"]) == (
        10,
        21,
        10,
        0,
    )  # 000.png has two copies: one in a, one in b
    report = (tmp_path / "out" / "report.md").read_text()
    assert (
        "## Duplicate images (byte-identical)" in report
        and "21 files in 10 groups: 0 within one class, 10 across classes" in report
    )
    assert (
        f"{folder / 'a' / '000.png'} (a), {folder / 'a' / 'twin.png'} (a), {folder / 'b' / 'copy0.png'} (b)" in report
    )
