"""Monte-Carlo dropout: stays stochastic in eval mode, samples in one batched pass."""

from __future__ import annotations

import sys

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


def layer_by_layer(model: zoo.ZooModel, images: torch.Tensor, masks: list[torch.Tensor]):
    """The plain layer stack run on S copies of each image, each active dropout layer
    multiplying by the next of ``masks`` (drawn by `MCDropoutLeNet._draw_masks`)."""
    samples = len(masks[0]) // len(images)
    hidden = model.prepare_input(images).repeat_interleave(samples, dim=0)
    remaining = iter(masks)
    for layer in model.layers:
        if not isinstance(layer, (nn.Dropout, nn.Dropout2d)):
            hidden = layer(hidden)
        elif layer.p > 0 and layer.training:  # a dropout layer that is on
            hidden = hidden * next(remaining)
    assert next(remaining, None) is None, "every mask is used"
    return hidden.view(len(images), samples, -1)


@pytest.mark.parametrize("conv_dropout", [0.25, 0.0])
def test_sharing_the_deterministic_prefix_does_not_change_the_samples(
    conv_dropout: float, images: torch.Tensor
) -> None:
    """With the masks the batched pass draws, the plain layer-by-layer pass on S copies of
    each image gives the same logits."""
    model = zoo.create_model("mc_dropout_lenet", conv_dropout=conv_dropout).eval()
    torch.manual_seed(3)
    shared = model(images, samples=5)
    torch.manual_seed(3)
    masks = model._draw_masks(len(images), 5)  # the batch is one draw group
    assert len(masks) == (4 if conv_dropout else 2)
    torch.testing.assert_close(shared, layer_by_layer(model, images, masks), rtol=1e-5, atol=1e-5)


def test_batched_samples_match_the_dropout_layers_own_samples_in_distribution(
    images: torch.Tensor,
) -> None:
    """The batched pass draws its masks its own way; its predictions are distributed as those
    of the plain layer stack whose `nn.Dropout` layers draw theirs."""
    model = spread_out(zoo.create_model("mc_dropout_lenet").eval())
    draws = 400
    with torch.no_grad():
        batched = model(images, samples=draws).softmax(-1)  # (B, S, C)
        prepared = model.prepare_input(images)
        own = torch.stack([model.layers(prepared) for _ in range(draws)], 1).softmax(-1)
    assert batched.std(1).mean() > 0.05, "the test needs predictions that dropout moves"
    for moment in (1, 2):  # same mean and same spread, within 5 standard errors
        a, b = batched.pow(moment), own.pow(moment)
        standard_error = ((a.var(1) + b.var(1)) / draws).sqrt()
        assert ((a.mean(1) - b.mean(1)).abs() <= 5 * standard_error + 1e-4).all()


@pytest.mark.parametrize("switched_off", [(), ("drop1",), ("drop2",), ("drop1", "drop3")])
@pytest.mark.parametrize("conv_dropout", [0.25, 0.0])
def test_the_batched_pass_has_the_layer_by_layer_gradients(
    conv_dropout: float, switched_off: tuple[str, ...], images: torch.Tensor
) -> None:
    """The pass reorders pooling and ReLU and applies the ReLU in place; with the same masks,
    every parameter's gradient is still that of the plain layer stack, whichever dropout
    layers are on."""
    model = zoo.create_model("mc_dropout_lenet", conv_dropout=conv_dropout).eval()
    for name in switched_off:
        getattr(model.layers, name).eval()
    targets = torch.arange(len(images)).repeat_interleave(3) % 10
    gradients = []
    for forward in ("batched", "layer by layer"):
        torch.manual_seed(5)
        if forward == "batched":
            logits = model(images, samples=3)
        else:
            logits = layer_by_layer(model, images, model._draw_masks(len(images), 3))
        model.zero_grad()
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets).backward()
        gradients.append({name: p.grad.clone() for name, p in model.named_parameters()})
    for name, gradient in gradients[0].items():
        torch.testing.assert_close(gradient, gradients[1][name], rtol=1e-4, atol=1e-6)
        assert gradient.abs().sum() > 0, name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rate", [0.25, 0.5, 0.9])
def test_dropout_masks_keep_each_unit_with_the_layers_probability_and_scale(
    rate: float, dtype: torch.dtype
) -> None:
    lenet_module = sys.modules["zoo.models.lenet"]
    torch.manual_seed(0)
    like = torch.zeros((), dtype=dtype)
    masks = lenet_module.dropout_mask((4000, 50), rate, like)
    assert masks.dtype == dtype and masks.shape == (4000, 50)
    kept = masks != 0
    scale = torch.ones((), dtype=dtype) / torch.tensor(1 - rate, dtype=dtype)
    assert torch.equal(masks[kept], scale.expand_as(masks[kept]))
    keep = 1 - rate
    standard_error = (keep * rate / masks.numel()) ** 0.5
    assert abs(kept.double().mean().item() - keep) <= 5 * standard_error
    per_unit = kept.double().mean(0)  # no unit is favoured
    assert ((per_unit - keep).abs() <= 5 * (keep * rate / 4000) ** 0.5).all()
    correlation = torch.corrcoef(kept.double().T[:10])  # neighbours are independent
    assert (correlation - torch.eye(10)).abs().max() < 0.1
    assert not lenet_module.dropout_mask((3, 4), 1.0, like).any()  # p = 1 set by hand


def test_the_factorised_convolution_equals_the_plain_one_for_the_same_masks(
    images: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """conv2 after channel dropout is computed once per image and summed per sample; with the
    same masks (the same seed draws them) it gives the layer-by-layer logits."""
    lenet_module = sys.modules["zoo.models.lenet"]
    model = zoo.create_model("mc_dropout_lenet").eval()
    torch.manual_seed(3)
    factorised = model(images, samples=7)

    def plain(shared: torch.Tensor, masks: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
        count, samples, channels = masks.shape
        repeated = lenet_module.repeat_for_samples(shared, samples)
        return conv(repeated * masks.reshape(count * samples, channels, 1, 1))

    monkeypatch.setattr(lenet_module, "channel_dropped_conv", plain)
    torch.manual_seed(3)
    layer_by_layer = model(images, samples=7)
    assert factorised.shape == layer_by_layer.shape == (len(images), 7, 10)
    torch.testing.assert_close(factorised, layer_by_layer, rtol=1e-5, atol=1e-5)
    assert not torch.equal(factorised[:, 0], factorised[:, 1])  # the samples still differ


def test_the_factorised_convolution_handles_any_masks_and_a_missing_bias() -> None:
    lenet_module = sys.modules["zoo.models.lenet"]
    conv = nn.Conv2d(3, 4, kernel_size=3, padding=1, bias=False)
    shared = torch.randn(2, 3, 6, 6)
    masks = torch.tensor([[[0.0, 2.0, 1.0], [4.0, 0.0, 0.0]], [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]])
    result = lenet_module.channel_dropped_conv(shared, masks, conv)
    for image in range(2):
        for sample in range(2):
            expected = conv(shared[image : image + 1] * masks[image, sample].view(1, 3, 1, 1))
            torch.testing.assert_close(result[image * 2 + sample], expected[0])
