"""Monte-Carlo dropout: stays stochastic in eval mode, samples in one batched pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo


def spread_out(model: zoo.ZooModel) -> zoo.ZooModel:
    """Scale the weights up so that dropout visibly moves the predictions."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(4.0)
    return model


def test_eval_keeps_dropout_on_and_puts_other_layers_in_eval_mode() -> None:
    model = zoo.create_model("mc_dropout_lenet").eval()
    dropout_layers = [m for m in model.modules() if isinstance(m, (nn.Dropout, nn.Dropout2d))]
    assert len(dropout_layers) == 4
    assert all(layer.training for layer in dropout_layers)
    other = [m for m in model.modules() if not isinstance(m, (nn.Dropout, nn.Dropout2d))]
    assert not any(layer.training for layer in other)
    model.train()
    assert all(layer.training for layer in model.modules())


def test_samples_differ_within_a_call_and_a_seed_reproduces_the_call(
    images: torch.Tensor,
) -> None:
    model = zoo.create_model("mc_dropout_lenet").eval()
    torch.manual_seed(7)
    first = model(images, samples=8)
    assert not torch.allclose(first[:, 0], first[:, 1])
    assert not torch.allclose(first, model(images, samples=8))
    torch.manual_seed(7)
    assert torch.equal(first, model(images, samples=8))


def test_deterministic_lenet_turns_its_dropout_off_in_eval(images: torch.Tensor) -> None:
    model = zoo.create_model("lenet", conv_dropout=0.3, fc_dropout=0.5).eval()
    assert torch.equal(model(images), model(images))
    model.train()
    assert not torch.equal(model(images), model(images))


@pytest.mark.parametrize("conv_dropout", [0.25, 0.0])
def test_sharing_the_deterministic_prefix_does_not_change_the_samples(
    conv_dropout: float, images: torch.Tensor
) -> None:
    model = zoo.create_model("mc_dropout_lenet", conv_dropout=conv_dropout).eval()
    torch.manual_seed(3)
    shared = model(images, samples=5)
    torch.manual_seed(3)
    naive = model.layers(model.prepare_input(images).repeat_interleave(5, dim=0)).view(6, 5, 10)
    assert torch.allclose(shared, naive, atol=1e-5)


def test_batched_samples_match_separate_forward_passes_in_distribution(
    images: torch.Tensor,
) -> None:
    model = spread_out(zoo.create_model("mc_dropout_lenet").eval())
    draws = 400
    with torch.no_grad():
        batched = model(images, samples=draws).softmax(-1)  # (B, S, C)
        looped = torch.cat([model(images, samples=1) for _ in range(draws)], 1).softmax(-1)
    assert batched.std(1).mean() > 0.05, "the test needs predictions that dropout moves"
    for moment in (1, 2):  # same mean and same spread, within 5 standard errors
        a, b = batched.pow(moment), looped.pow(moment)
        standard_error = ((a.var(1) + b.var(1)) / draws).sqrt()
        assert ((a.mean(1) - b.mean(1)).abs() <= 5 * standard_error + 1e-4).all()
