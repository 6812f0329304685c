"""FastViT's fused inference model predicts what the unfused one does (tolerance in harness.inference)."""

import pytest
import timm
import torch
from torch.utils.data import DataLoader, TensorDataset

from harness.inference import is_reparameterizable, reparameterization_check


@pytest.mark.heavy
def test_fused_fastvit_matches_unfused():
    torch.manual_seed(0)
    model = timm.create_model("fastvit_t8", num_classes=8)
    model.train()
    with torch.no_grad():  # move BN statistics away from identity so fusion has real work to do
        for _ in range(3):
            model(torch.randn(8, 3, 64, 64))
    images = torch.randn(16, 3, 64, 64)
    loader = DataLoader(TensorDataset(images, torch.zeros(16, dtype=torch.long)), batch_size=8)
    assert is_reparameterizable(model)
    result = reparameterization_check(model, loader, lambda x: x, torch.device("cpu"))  # already model input
    assert result["top1_agreement"] == 1.0
    assert result["max_abs_logit_diff"] <= result["tolerance"]
    assert result["fused_images_per_s"] > 0 and result["unfused_images_per_s"] > 0
    assert any(hasattr(m, "reparameterize") for m in model.modules())  # the original is left unfused


def test_plain_models_are_not_reparameterizable():
    assert not is_reparameterizable(timm.create_model("test_efficientnet"))
