"""LeNet-5 for 28x28 grayscale images, deterministic and with Monte-Carlo dropout.

Both models share one layer stack, so their state dicts have the same keys:
conv 6@5x5 -> ReLU -> max-pool 2 -> Dropout2d -> conv 16@5x5 -> ReLU -> max-pool 2 -> Dropout2d
-> fc 120 -> ReLU -> Dropout -> fc 84 -> ReLU -> Dropout -> fc num_classes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import ModelConfigError
from zoo.models.base import (
    DEFAULT_SAMPLES,
    ZooModel,
    build_model,
    check_rate,
    check_samples,
    concatenated,
    forward_in_chunks,
    rows_per_chunk,
)
from zoo.models.citations import GAL_2016, LECUN_1998
from zoo.registry import register_model

_DROPOUT_LAYERS = (nn.Dropout, nn.Dropout2d)


def lenet_layers(num_classes: int, conv_dropout: float, fc_dropout: float) -> nn.Sequential:
    """The LeNet-5 stack; a 28x28 input leaves the second conv block as 16x4x4 = 256 features."""
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, 6, kernel_size=5),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            drop1=nn.Dropout2d(conv_dropout),
            conv2=nn.Conv2d(6, 16, kernel_size=5),
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            drop2=nn.Dropout2d(conv_dropout),
            flatten=nn.Flatten(),
            fc1=nn.Linear(16 * 4 * 4, 120),
            relu3=nn.ReLU(),
            drop3=nn.Dropout(fc_dropout),
            fc2=nn.Linear(120, 84),
            relu4=nn.ReLU(),
            drop4=nn.Dropout(fc_dropout),
            fc3=nn.Linear(84, num_classes),
        )
    )


def repeat_for_samples(features: Tensor, samples: int) -> Tensor:
    """Repeat each row of (B, ...) ``features`` S times, giving (B*S, ...).

    Feature maps come out in channels-last memory order, on which the convolution and pooling
    that follow run faster on CPU.
    """
    if features.dim() != 4:
        return features.repeat_interleave(samples, dim=0)
    channels_last = features.permute(0, 2, 3, 1)
    return channels_last.repeat_interleave(samples, dim=0).permute(0, 3, 1, 2)


class _LeNetStack(ZooModel):
    """The layers and dropout settings that `LeNet` and `MCDropoutLeNet` share."""

    def __init__(
        self,
        num_classes: int = 10,
        *,
        conv_dropout: float = 0.0,
        fc_dropout: float = 0.0,
        **common: Any,
    ) -> None:
        super().__init__(num_classes, **common)
        self.conv_dropout = check_rate("conv_dropout", conv_dropout)
        self.fc_dropout = check_rate("fc_dropout", fc_dropout)
        self.layers = lenet_layers(num_classes, self.conv_dropout, self.fc_dropout)

    def architecture_kwargs(self) -> dict[str, Any]:
        return {"conv_dropout": self.conv_dropout, "fc_dropout": self.fc_dropout}


class LeNet(_LeNetStack):
    """Deterministic LeNet-5, the baseline (LeCun et al., 1998).

    Dropout, if its rates are above 0, is ordinary training-time dropout and is off in eval
    mode. ``model(x)`` returns logits (B, C).

    Args:
        num_classes: number of output classes.
        conv_dropout: `nn.Dropout2d` rate after each conv block.
        fc_dropout: `nn.Dropout` rate after each hidden fully connected layer.
        class_labels, mean, std: see `ZooModel`.
    """

    architecture = "lenet"
    stochastic = False
    about = (
        "a deterministic LeNet-5, the baseline: its uncertainty is the entropy of one softmax, "
        "and it has no model (epistemic) uncertainty"
    )
    references = (LECUN_1998,)

    def forward(self, images: Tensor) -> Tensor:
        """Logits (B, C), computed in chunks (`zoo.models.base.ROWS_PER_CHUNK`), so that a
        large batch's activations never all live at once."""
        features = self.prepare_input(images)
        chunks = features.split(rows_per_chunk(features.device))
        return torch.cat([self.layers(chunk) for chunk in chunks])


class MCDropoutLeNet(_LeNetStack):
    """LeNet-5 whose dropout stays on at inference: Monte-Carlo dropout.

    Each forward sample draws fresh dropout masks, so the spread of the S predictions
    approximates a Bayesian posterior predictive. ``model.eval()`` leaves the dropout layers
    on (any other layer follows eval as usual), and ``model(x, samples=S)`` returns logits
    (B, S, C) from ONE batched pass: the layers before the first active dropout run once per
    image, and only the rest runs on the S copies. ``eval()`` on the model keeps dropout on;
    calling ``eval()`` on the dropout layers themselves does turn it off. The pass computes the
    layers from the first active dropout on its own way (masks drawn for all samples at once,
    the second convolution factorised, each pooling before its ReLU), so forward hooks on
    those layers do not see what a layer-by-layer pass would.

    Args:
        num_classes: number of output classes.
        conv_dropout: `nn.Dropout2d` rate after each conv block.
        fc_dropout: `nn.Dropout` rate after each hidden fully connected layer. At least one of
            the two rates must be above 0.
        class_labels, mean, std: see `ZooModel`.

    References:
        Gal & Ghahramani, "Dropout as a Bayesian Approximation: Representing Model Uncertainty
        in Deep Learning", ICML 2016.
    """

    architecture = "mc_dropout_lenet"
    stochastic = True
    about = (
        "a LeNet-5 with Monte-Carlo dropout: dropout stays on at inference, and the spread of "
        "16 dropout samples approximates the posterior predictive"
    )
    references = (LECUN_1998, GAL_2016)

    def __init__(
        self,
        num_classes: int = 10,
        *,
        conv_dropout: float = 0.25,
        fc_dropout: float = 0.5,
        **common: Any,
    ) -> None:
        super().__init__(num_classes, conv_dropout=conv_dropout, fc_dropout=fc_dropout, **common)
        if self.conv_dropout == 0.0 and self.fc_dropout == 0.0:
            raise ModelConfigError(
                "mc_dropout_lenet needs a dropout rate above 0 (conv_dropout or fc_dropout); "
                "use 'lenet' for a deterministic model"
            )

    def train(self, mode: bool = True) -> MCDropoutLeNet:
        """Set train/eval mode for every layer except dropout, which stays on."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, _DROPOUT_LAYERS):
                module.train(True)
        return self

    def forward(self, images: Tensor, samples: int = DEFAULT_SAMPLES) -> Tensor:
        """Logits (B, S, C) from S dropout samples in one batched pass."""
        samples = check_samples(samples)
        features = self.prepare_input(images)
        return forward_in_chunks(self._draw_masks, self._sample_chunk, features, samples)

    def _draw_masks(self, images: int, samples: int) -> list[Tensor]:
        """One draw group's dropout masks, for each active dropout layer in order: (N, C, 1, 1)
        channel masks for `nn.Dropout2d` and (N, F) unit masks for `nn.Dropout`, N = images x
        S, each 0 or 1 / (1 - p) (see `dropout_mask`)."""
        rows = images * samples
        parameter = self.layers.conv1.weight
        masks, width = [], 0
        for layer in self.layers:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                width = layer.weight.shape[0]
            elif _is_active(layer):
                shape = (rows, width, 1, 1) if isinstance(layer, nn.Dropout2d) else (rows, width)
                masks.append(dropout_mask(shape, layer.p, parameter))
        return masks

    def _sample_chunk(self, features: Tensor, samples: int, draws: list[list[Tensor]]) -> Tensor:
        """The layers before the first active dropout once per image, the rest on S copies,
        each dropout layer applying the draw groups' masks."""
        masks = iter([concatenated(layer) for layer in zip(*draws, strict=True)])
        first_stochastic = self._first_active_dropout()
        shared = self.layers[:first_stochastic](features)
        rest = list(self.layers[first_stochastic:])
        if len(rest) > 1 and isinstance(rest[0], nn.Dropout2d) and _plain_conv(rest[1]):
            mask = next(masks)
            per_sample = mask.view(len(features), samples, mask.shape[1])
            hidden = channel_dropped_conv(shared, per_sample, rest[1])
            rest = rest[2:]
        else:
            hidden = repeat_for_samples(shared, samples)
        for layer in _pooled_before_relu(rest):
            if _is_active(layer):
                mask = next(masks)
                hidden = hidden * (mask if mask.dtype == hidden.dtype else mask.to(hidden.dtype))
            elif isinstance(layer, nn.ReLU):
                # In place: ``hidden`` is this pass's own, and what made it (a pooling, a
                # linear layer, a masked product) keeps no output for the backward pass.
                hidden = hidden.relu_()
            elif not isinstance(layer, _DROPOUT_LAYERS):
                hidden = layer(hidden)
        return hidden.view(features.shape[0], samples, self.num_classes)

    def _first_active_dropout(self) -> int:
        """Index in `layers` of the first dropout layer that is on (all layers when none is)."""
        return next(
            (index for index, layer in enumerate(self.layers) if _is_active(layer)),
            len(self.layers),
        )


def dropout_mask(shape: tuple[int, ...], rate: float, like: Tensor) -> Tensor:
    """Dropout multipliers of ``shape``: 0 with probability ``rate``, else 1 / (1 - rate), the
    scaling `nn.Dropout` applies, in the dtype and on the device of ``like``.

    Each is a float32 uniform number compared with the keep probability, which is then exact
    to 2^-24 whatever the dtype. The distribution is `nn.Dropout`'s, drawn by another route:
    ``bernoulli_``, which `nn.Dropout` uses, took 4.6 times as long on the CPU (a draw group's
    2,048 x 226 masks, 9.4 ms against 2.0), and a whole 16-sample pass 1.5 times as long
    (scripts/bench_forward.py).
    """
    keep = 1.0 - rate
    if keep == 0.0:  # a layer's p set to 1 by hand: nn.Dropout then zeroes everything
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    uniform = torch.rand(shape, dtype=torch.float32, device=like.device)
    return uniform.lt_(keep).to(like.dtype).div_(keep)


def channel_dropped_conv(shared: Tensor, masks: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv`` of S channel-dropped copies of each image, computing the convolution once.

    A convolution is linear in its input channels: with channel c kept by m_c (0, or
    1 / (1 - p) as `nn.Dropout2d` scales it), conv(m * x) = sum_c m_c conv_c(x_c) + bias,
    conv_c being the convolution of channel c alone. The C partial outputs conv_c(x_c) are
    computed once per image, as one grouped convolution costing what the plain one costs;
    each sample is then a masked sum of them: C x out_channels x H' x W' multiply-adds a
    sample instead of the convolution's C x out_channels x k x k x H' x W'.

    Args:
        shared: (B, C, H, W) inputs, the same for every sample.
        masks: (B, S, C) each sample's channel multipliers.
        conv: a convolution with one group.

    Returns:
        (B x S, out_channels, H', W'), sample-major within each image, as the layer-by-layer
        pass gives it.
    """
    images, channels = shared.shape[:2]
    out_channels = conv.out_channels
    weight = conv.weight.transpose(0, 1).reshape(channels * out_channels, 1, *conv.kernel_size)
    partials = F.conv2d(
        shared, weight, None, conv.stride, conv.padding, conv.dilation, groups=channels
    )
    height, width = partials.shape[2:]
    # (B, C, H x W x O): each channel's partial output in channels-last order, so that the
    # samples come out channels-last, the layout the pooling after is fastest on
    partials = partials.view(images, channels, out_channels, height * width).transpose(2, 3)
    partials = partials.reshape(images, channels, height * width * out_channels)
    bias = conv.bias if conv.bias is not None else partials.new_zeros(out_channels)
    summed = torch.baddbmm(bias.repeat(height * width), masks, partials)
    samples = images * masks.shape[1]
    return summed.view(samples, height, width, out_channels).permute(0, 3, 1, 2)


def _pooled_before_relu(layers: list[nn.Module]) -> list[nn.Module]:
    """``layers`` with each ReLU that a max-pooling follows moved after it: max-pooling
    commutes with the ReLU, and the ReLU then runs on a quarter of the values."""
    reordered = list(layers)
    for index in range(len(reordered) - 1):
        if isinstance(reordered[index], nn.ReLU) and isinstance(reordered[index + 1], nn.MaxPool2d):
            reordered[index], reordered[index + 1] = reordered[index + 1], reordered[index]
    return reordered


def _plain_conv(layer: nn.Module) -> bool:
    """A convolution `channel_dropped_conv` can split by input channel."""
    return isinstance(layer, nn.Conv2d) and layer.groups == 1 and layer.padding_mode == "zeros"


def _is_active(layer: nn.Module) -> bool:
    """Whether ``layer`` is a dropout layer that drops: a rate above 0, and in train mode (a
    user may switch one layer off with ``layer.eval()``)."""
    return isinstance(layer, _DROPOUT_LAYERS) and layer.p > 0 and layer.training


@register_model
def lenet(**kwargs: Any) -> LeNet:
    """Deterministic LeNet-5, the baseline.

    Keyword arguments go to `LeNet`.
    """
    return build_model(LeNet, kwargs)


@register_model
def mc_dropout_lenet(**kwargs: Any) -> MCDropoutLeNet:
    """LeNet-5 with Monte-Carlo dropout (Gal & Ghahramani, 2016).

    Keyword arguments go to `MCDropoutLeNet`.
    """
    return build_model(MCDropoutLeNet, kwargs)
