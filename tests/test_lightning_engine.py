"""The Lightning engine: one process in-process, two processes (DDP over gloo) through the harness entry point."""

import pytest
import torch

from harness import launch, runner
from harness.engines.history import without_timing
from harness.hardware import detect
from harness.launch import LaunchError
from harness.results.record import RunResult
from tests.conftest import make_image_folder, tiny_spec


def test_single_process_run_reports_the_shared_metrics(tiny_folder, settings):
    threads, mine = torch.get_num_threads(), detect().cpu_cores + 1  # not what the engine would choose on any machine
    torch.set_num_threads(mine)  # as OMP_NUM_THREADS would: the user's, for this run and every later one
    try:
        record = runner.run(tiny_spec(engine="lightning"), settings.replace(data_root=tiny_folder))
        assert torch.get_num_threads() == mine, "a run in this process changed its torch threads"
    finally:
        torch.set_num_threads(threads)
    assert set(record.test) == {"test_loss", "test_acc", "test_f1", "test_top3", "test_top5"}
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "lr", "epoch_time"} <= set(record.history[0])
    assert (record.history[0]["train_images"], record.history[0]["val_images"]) == (36, 18)
    assert record.train_images_per_s > 0
    assert 0.0 < record.history[0]["data_wait_time"] < record.history[0]["train_time"]  # 0.0 if the hook never ran
    assert 0.0 < record.data_wait_share < 1.0


@pytest.mark.slow
@pytest.mark.ddp
@pytest.mark.heavy
def test_two_process_bf16_run_through_the_entry_point(tmp_path, settings, capsys):
    """45 training images over 2 processes: DistributedSampler pads each epoch to 46, and the
    training metrics counted the repeat (train_images 46) while evaluation counted each image once.
    Then `--resume` of the finished run trains nothing, as for one process (the launcher once claimed a new
    attempt and handed it to its children, which trained it from epoch 1)."""
    folder = make_image_folder(tmp_path / "data", {"a": 30, "b": 30, "c": 30})
    spec = tiny_spec(engine="lightning", precision="bf16-mixed", devices=2).with_recipe(epochs=2)
    assert launch.needs_own_processes(spec)
    settings = settings.replace(data_root=folder, checkpoint_dirs=(tmp_path / "ckpt",))
    record = launch.run(spec, settings)
    again = launch.run(spec, settings.replace(resume=True))
    assert again.run_id == record.run_id and again.test == record.test
    assert [p.name for p in settings.results_dir.iterdir() if p.is_dir()] == [record.run_id]
    assert f"{spec.id} already finished" in capsys.readouterr().out
    assert record.spec["devices"] == 2 and record.spec["precision"] == "bf16-mixed"
    assert RunResult.load(settings.results_dir / record.run_id / "result.json").test == record.test
    assert record.batch == {"global": 8, "processes": 2, "per_process": 4, "per_device": 4}
    assert 0 <= record.test["test_acc"] <= 1 and len(record.history) == 2
    assert record.data["split"] == {"train": 45, "val": 24, "test": 21, "unused": 0, "by": "the recipe"}
    assert [(row["train_images"], row["val_images"]) for row in record.history] == [(45, 24), (45, 24)]


@pytest.mark.slow
@pytest.mark.ddp
@pytest.mark.heavy
def test_failing_child_fails_with_its_error_shown(tmp_path, settings):
    folder = tmp_path / "data"
    make_image_folder(folder, {"a": 4, "b": 4})
    spec = tiny_spec(engine="lightning", devices=2, model="test_vit").with_recipe(
        image_size=30
    )  # 30 is not a multiple of test_vit's patch
    with pytest.raises(LaunchError, match=r"exited with 1.*end of its output"):
        launch.run(spec, settings.replace(data_root=folder))


@pytest.mark.slow
@pytest.mark.ddp
def test_two_nodes_on_loopback_equal_one_node_with_two_processes(tiny_folder, settings):
    """torchrun --nnodes=2 (one CPU process per node) gives the global metrics of 1 node x 2 processes."""
    from harness.artifacts.emulator import free_port

    settings = settings.replace(data_root=tiny_folder)
    # Global batch 16: 8 per process. At 4 per process, BatchNorm over so few images amplifies the
    # float-order difference below until a near-tie test prediction flips.
    one_node = launch.run(tiny_spec(engine="lightning", devices=2).with_recipe(batch_size=16), settings)
    two_nodes = launch.run_nodes_on_loopback(
        tiny_spec(engine="lightning", devices=1, num_nodes=2).with_recipe(batch_size=16),
        settings,
        master_port=free_port(),
    )
    assert two_nodes.spec["num_nodes"] == 2
    # Same shards, same seed: equal up to float summation order (each "node" here picks its own
    # CPU thread count, which changes the order of reductions): the losses to 1e-4 relative. The
    # counted metrics may differ by one near-tie test image (seen on an AVX2 CPU: F1 0.0556 against
    # 0.0526), never by more: other shards or batches would move the losses far beyond 1e-4.
    for key in ("train_loss", "val_loss"):
        assert two_nodes.history[0][key] == pytest.approx(one_node.history[0][key], rel=1e-4), key
    assert two_nodes.test["test_loss"] == pytest.approx(one_node.test["test_loss"], rel=1e-4)
    one_image = 1 / two_nodes.data["split"]["test"]
    assert abs(two_nodes.test["test_acc"] - one_node.test["test_acc"]) <= one_image + 1e-6


def test_single_process_bf16_really_runs_in_bf16(tiny_folder, settings):
    """bf16-mixed on one CPU process: Lightning's autocast makes the convolutions compute in bf16."""
    import torch
    from torch.nn.modules.module import register_module_forward_hook

    seen: set[torch.dtype] = set()

    def conv_dtype(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            seen.add(output.dtype)

    handle = register_module_forward_hook(conv_dtype)
    try:
        record = runner.run(
            tiny_spec(engine="lightning", precision="bf16-mixed"), settings.replace(data_root=tiny_folder)
        )
    finally:
        handle.remove()
    assert torch.bfloat16 in seen
    assert record.spec["precision"] == "bf16-mixed" and record.test["test_loss"] > 0


@pytest.mark.slow
@pytest.mark.ddp
@pytest.mark.heavy
def test_two_processes_train_the_same_recipe_as_one(tiny_folder, settings):
    """The batch is global: 2 processes x 4 images step like 1 process x 8 (same images per step, the
    gradient averaged over the same 8). On a model without BatchNorm (test_vit: LayerNorm), whose
    statistics would otherwise be per process, the two runs agree up to float summation order."""
    settings = settings.replace(data_root=tiny_folder)
    one, two = (
        launch.run(tiny_spec(engine="lightning", model="test_vit", devices=n).with_recipe(epochs=2), settings)
        for n in (1, 2)
    )
    assert (one.batch["per_process"], two.batch["per_process"]) == (8, 4)
    assert two.test == pytest.approx(one.test, rel=1e-4, abs=1e-6)
    for got, expected in zip(two.history, one.history, strict=True):
        assert without_timing(got) == pytest.approx(without_timing(expected), rel=1e-4, abs=1e-6)
