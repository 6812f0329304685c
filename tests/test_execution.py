"""--compile and --fused-optimizer: real tiny runs through both engines, recorded, same training."""

import pytest
import torch
from torch._dynamo.utils import counters

from harness import runner
from harness.artifacts.checkpoints import load
from harness.engines.history import without_timing
from harness.engines.training import optimizer_for
from tests.conftest import ENGINES_SECOND_HEAVY, tiny_spec


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_fused_optimizer_takes_the_same_step_as_the_default(optimizer):
    spec = tiny_spec().with_recipe(optimizer=optimizer)
    weights = [torch.nn.Parameter(torch.randn(64, generator=torch.Generator().manual_seed(0))) for _ in range(2)]
    copies = [torch.nn.Parameter(w.detach().clone()) for w in weights]
    plain, fused = optimizer_for(spec.recipe, weights), optimizer_for(spec.recipe, copies, fused=True)
    assert fused.defaults["fused"] is True and not plain.defaults.get("fused")
    for _ in range(3):
        for params, opt in ((weights, plain), (copies, fused)):
            for p in params:
                p.grad = torch.ones_like(p) * p.detach().sin()
            opt.step()
    for a, b in zip(weights, copies, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES_SECOND_HEAVY)
@pytest.mark.heavy
def test_compiled_fused_run_is_recorded_and_trains_like_the_plain_one(engine, tiny_folder, settings):
    """torch.compile (inductor, on the CPU here) and the fused optimizer change kernels, not the
    training: the same seed gives the same losses to float tolerance, and the record says which ran.
    (Accuracy and F1 are left out: a one-epoch tiny model has near-ties that float noise flips.)"""
    settings = settings.replace(data_root=tiny_folder)
    spec = tiny_spec(engine=engine)
    plain = runner.run(spec, settings, run_id="plain")
    torch._dynamo.reset()
    counters.clear()
    fast = runner.run(
        spec,
        settings.replace(compile=True, fused_optimizer=True, checkpoint_dirs=(settings.results_dir / "ckpt",)),
        run_id="fast",
    )
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo really captured the model
    saved = load(settings.results_dir / "ckpt" / "fast" / "last.ckpt")
    assert (
        saved["optimizer_states"][0]["param_groups"][0]["fused"] is True
    )  # the engine's optimizer, not only optimizer_for
    assert plain.execution == {"compile": False, "fused_optimizer": False}
    assert fast.execution == {"compile": True, "fused_optimizer": True}
    assert fast.test["test_loss"] == pytest.approx(plain.test["test_loss"], abs=2e-3)
    assert [sorted(without_timing(r)) for r in fast.history] == [sorted(without_timing(r)) for r in plain.history]
    for key in ("train_loss", "val_loss"):
        assert fast.history[0][key] == pytest.approx(plain.history[0][key], abs=2e-3), key
