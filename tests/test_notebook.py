"""The example project's notebook, executed in a real Jupyter kernel (nbclient with ipykernel), as a user runs it
from the project's folder: its public `run` trains 2 processes in bf16-mixed, fresh processes started through
trainbench's entry point (never forks of the kernel); their progress shows in the cell as it comes; the record
comes back and displays as a table."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.settings import REPO_ROOT

pytest.importorskip("nbclient", reason="the notebook extra (pip install trainbench[notebook]) runs notebooks")

EXAMPLE = REPO_ROOT / "examples" / "shapes-project"
NOTEBOOK = "two_processes.ipynb"


def _texts(cell: dict, kind: str) -> str:
    """A cell's stream text (`stream`) or its displayed Markdown (`markdown`)."""
    out = []
    for output in cell.get("outputs", ()):
        if kind == "stream" and output["output_type"] == "stream":
            out.append(output["text"])
        if kind == "markdown" and "text/markdown" in output.get("data", {}):
            out.append(output["data"]["text/markdown"])
    return "".join(out)


@pytest.mark.heavy
@pytest.mark.ddp
def test_the_notebook_trains_two_bf16_processes_in_a_real_kernel_and_shows_the_record(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    project = tmp_path / "shapes-project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("data", "results", "__pycache__"))
    notebook = nbformat.read(project / NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(project)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, when a cell fails

    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    trained = _texts(cells[2], "stream")
    assert "[trainbench] tiny_convnet-shapes-lightning-bf16-2dev-random" in trained  # the children's start-up line
    assert "2 processes" in trained  # on CPU: 2 gloo processes
    assert "epoch 1/4" in trained and "epoch 4/4" in trained, trained[-2000:]  # progress, shown in the cell
    shown = _texts(cells[3], "markdown")
    assert "| case |" in shown and "balanced_acc ↑" in shown, shown

    (record_file,) = (project / "results" / "notebook").glob("*/result.json")
    record = json.loads(record_file.read_text())
    assert record["spec"]["devices"] == 2 and record["spec"]["precision"] == "bf16-mixed"
    assert record["spec"]["recipe"]["scheduler"] == "cosine" and record["history"][0]["lr"] == pytest.approx(1.5e-3)
    assert 0 <= record["test"]["test_balanced_acc"] <= 1 and record["test"]["test_acc"] >= 0.4
