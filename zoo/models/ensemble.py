"""A deep ensemble of LeNet-5s (Lakshminarayanan et al., 2017), run as one batched network.

The M members' weights are stacked along a leading member axis, so one pass computes every
member: the first convolution stacks the members along its output channels (the input is
shared), the second is a grouped convolution with one group per member, and the linear layers
are batched matrix products. There is no Python loop over members.

Training takes the same weights with one batch per member (`forward_members`): there the
convolutions run member by member, which the CPU does faster, backward pass included, than
grouped convolutions (33 against 57 ms a step for 5 members and batches of 128, 2-core CPU),
and the linear layers stay batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import InvalidInputError, ModelConfigError
from zoo.limits import MAX_MEMBERS, MAX_TRAINING_ROWS
from zoo.models.base import (
    DEFAULT_SAMPLES,
    ZooModel,
    build_model,
    check_samples,
    concatenated,
    rows_per_chunk,
)
from zoo.models.citations import LAKSHMINARAYANAN_2017, LECUN_1998
from zoo.models.lenet import LeNet, lenet_layers
from zoo.registry import register_model

# The LeNet-5 layers whose weights and biases are stacked, one slice per member.
_LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")


class DeepEnsembleLeNet(ZooModel):
    """M LeNet-5s trained independently; their spread is the model (epistemic) uncertainty.

    ``model(x)`` returns logits (B, M, C): the S axis is the members, S = M always, so the
    mutual information of a prediction is the members' disagreement. ``samples`` is checked
    like any model's and otherwise ignored, as for a deterministic model, so that one call
    fits every model. Train one with a recipe (each member from its own seed, batch order and
    augmentation; see `zoo.training.member_seed`), or build one from trained LeNets with
    `from_members` (or `zoo.ensemble`).

    Args:
        num_classes: number of output classes.
        members: M, from 2 to `MAX_MEMBERS`.
        class_labels, mean, std: see `ZooModel`.

    References:
        Lakshminarayanan, Pritzel & Blundell, "Simple and Scalable Predictive Uncertainty
        Estimation using Deep Ensembles", NeurIPS 2017.
    """

    architecture = "deep_ensemble_lenet"
    stochastic = True
    about = (
        "a deep ensemble of LeNet-5s: each member was trained on its own, and their "
        "disagreement is the model (epistemic) uncertainty"
    )
    references = (LECUN_1998, LAKSHMINARAYANAN_2017)

    def __init__(self, num_classes: int = 10, *, members: int = 5, **common: Any) -> None:
        super().__init__(num_classes, **common)
        if isinstance(members, bool) or not isinstance(members, int):
            raise ModelConfigError(f"members must be an integer, got {members!r}")
        if not 2 <= members <= MAX_MEMBERS:
            raise ModelConfigError(f"members must be from 2 to {MAX_MEMBERS}, got {members}")
        self.members = members
        # Each member starts as a LeNet-5 does, drawn one after another.
        stacks = [lenet_layers(num_classes, 0.0, 0.0) for _ in range(members)]
        for name in _LAYERS:
            for part in ("weight", "bias"):
                first = getattr(stacks[0], name).get_parameter(part)
                # Filled in place rather than by torch.stack, which on the meta device (where
                # `zoo info` builds models) imports torch._dynamo, seconds of start-up.
                stacked = first.new_empty(members, *first.shape)
                with torch.no_grad():
                    for member, stack in enumerate(stacks):
                        stacked[member].copy_(getattr(stack, name).get_parameter(part))
                self.register_parameter(f"{name}_{part}", nn.Parameter(stacked))

    @torch.no_grad()
    def reset_member(self, member: int) -> None:
        """Give member ``member`` fresh initial weights, drawn from the CPU's generator exactly
        as a new `LeNet` draws its own: seeded alike, the member starts as that LeNet does."""
        if not 0 <= member < self.members:
            raise IndexError(f"member {member} of an ensemble of {self.members}")
        fresh = lenet_layers(self.num_classes, 0.0, 0.0)
        for name in _LAYERS:
            for part in ("weight", "bias"):
                stacked = getattr(self, f"{name}_{part}")
                stacked[member].copy_(getattr(fresh, name).get_parameter(part))

    def architecture_kwargs(self) -> dict[str, Any]:
        return {"members": self.members}

    def samples_per_image(self, samples: int) -> int:
        return self.members

    @classmethod
    def from_members(cls, members: Sequence[ZooModel]) -> DeepEnsembleLeNet:
        """An ensemble of trained deterministic LeNets, which must agree in their classes,
        labels and normalisation. Their weights are copied; they are left as they are."""
        members = list(members)
        if not all(isinstance(member, LeNet) for member in members):
            kinds = sorted({type(member).__name__ for member in members})
            raise ModelConfigError(f"an ensemble's members must be lenet models, not {kinds}")
        first = members[0] if members else None
        if first is None or len(members) < 2:
            raise ModelConfigError(f"an ensemble needs at least 2 members, got {len(members)}")
        for number, member in enumerate(members, start=1):
            if any(parameter.is_meta for parameter in member.parameters()):
                raise ModelConfigError(f"member {number} is on the meta device, without weights")
            if member.temperature != 1.0:
                raise ModelConfigError(
                    f"member {number} has temperature {member.temperature:g}; build the "
                    "ensemble from uncalibrated members, then calibrate the ensemble"
                )
        for number, member in enumerate(members[1:], start=2):
            if (member.num_classes, member.class_labels, member.mean, member.std) != (
                first.num_classes,
                first.class_labels,
                first.mean,
                first.std,
            ):
                raise ModelConfigError(
                    f"member {number} differs from member 1 in its classes, labels or "
                    "normalisation; an ensemble's members must agree in them"
                )
        ensemble = cls(
            first.num_classes,
            members=len(members),
            class_labels=first.class_labels,
            mean=first.mean,
            std=first.std,
        )
        with torch.no_grad():
            for name in _LAYERS:
                for part in ("weight", "bias"):
                    stacked = torch.stack(  # on the CPU, wherever each member is
                        [
                            getattr(member.layers, name).get_parameter(part).detach().cpu()
                            for member in members
                        ]
                    )
                    getattr(ensemble, f"{name}_{part}").copy_(stacked)
        return ensemble

    def forward(self, images: Tensor, samples: int = DEFAULT_SAMPLES) -> Tensor:
        """Logits (B, M, C), every member in one batched pass; ``samples`` is ignored."""
        check_samples(samples)
        features = self.prepare_input(images)
        images_per_chunk = max(1, rows_per_chunk(features.device) // self.members)
        return concatenated([self._members(chunk) for chunk in features.split(images_per_chunk)])

    def forward_members(self, images: Tensor, members: slice | None = None) -> Tensor:
        """Logits (M', B, C) of each member on its own batch of (M', B, 28, 28) ``images``
        (uint8, or normalised floats): member m sees only its own row of ``images``. For
        training, where each member has its own batches; without chunking.

        ``members`` (a slice of the M members, all by default) picks the M' members that run,
        so that processes training one ensemble can each run their own members; the others
        get no gradient from the pass.
        """
        if members is not None and not (
            isinstance(members, slice)
            and all(isinstance(end, (int, type(None))) for end in (members.start, members.stop))
        ):
            raise InvalidInputError(f"forward_members takes a slice of members, not {members!r}")
        chosen = range(self.members)[members if members is not None else slice(None)]
        if chosen.step != 1 or not chosen:
            raise InvalidInputError(
                f"forward_members runs one or more consecutive members, not {members}"
            )
        shape = tuple(images.shape) if isinstance(images, Tensor) else None
        if shape is None or shape[2:] not in ((28, 28), (1, 28, 28)) or shape[0] != len(chosen):
            raise InvalidInputError(
                f"forward_members takes (M, B, 28, 28) or (M, B, 1, 28, 28) images with M = "
                f"{len(chosen)}, got {shape if shape is not None else type(images).__name__}"
            )
        count, batch = shape[:2]
        if count * batch > MAX_TRAINING_ROWS:
            raise InvalidInputError(
                f"forward_members runs M x B = {count * batch:,} images at once, more than "
                f"the {MAX_TRAINING_ROWS:,} a training step may; use smaller batches"
            )
        features = self.prepare_input(images.flatten(0, 1))  # (M'*B, 1, 28, 28)
        per_member = features.view(count, batch, 1, 28, 28)
        hidden = torch.stack(
            [self._member_features(m, per_member[i]) for i, m in enumerate(chosen)]
        )
        span = slice(chosen.start, chosen.stop)
        for name in ("fc1", "fc2"):
            hidden = self._linear(name, hidden, span).relu()
        return self._linear("fc3", hidden, span)  # (M', B, C)

    def _member_features(self, member: int, images: Tensor) -> Tensor:
        """Member ``member``'s conv blocks on its own (B, 1, 28, 28) images: (B, 256)."""
        hidden = F.conv2d(images, self.conv1_weight[member], self.conv1_bias[member])
        hidden = F.max_pool2d(hidden, 2).relu()
        hidden = F.conv2d(hidden, self.conv2_weight[member], self.conv2_bias[member])
        return F.max_pool2d(hidden, 2).relu().flatten(1)

    def _members(self, features: Tensor) -> Tensor:
        """(B, M, C) logits of every member for (B, 1, 28, 28) ``features``."""
        batch, members = features.shape[0], self.members
        conv1 = self.conv1_weight.flatten(0, 1)  # (M*6, 1, 5, 5): the input is shared
        hidden = F.max_pool2d(F.conv2d(features, conv1, self.conv1_bias.flatten()), 2).relu()
        conv2 = self.conv2_weight.flatten(0, 1)  # (M*16, 6, 5, 5): one group per member
        hidden = F.conv2d(hidden, conv2, self.conv2_bias.flatten(), groups=members)
        hidden = F.max_pool2d(hidden, 2).relu()  # (B, M*16, 4, 4)
        hidden = hidden.view(batch, members, 16 * 4 * 4).transpose(0, 1)  # (M, B, 256)
        for name in ("fc1", "fc2"):
            hidden = self._linear(name, hidden).relu()
        return self._linear("fc3", hidden).transpose(0, 1)  # (B, M, C)

    def _linear(self, name: str, inputs: Tensor, members: slice = slice(None)) -> Tensor:
        """Each member's linear layer on its own rows: (M, B, in) -> (M, B, out); for the
        ``members`` given, M of them."""
        weight = getattr(self, f"{name}_weight")[members]
        bias = getattr(self, f"{name}_bias")[members]
        return torch.baddbmm(bias.unsqueeze(1), inputs, weight.transpose(1, 2))


@register_model
def deep_ensemble_lenet(**kwargs: Any) -> DeepEnsembleLeNet:
    """A deep ensemble of LeNet-5s (Lakshminarayanan et al., 2017).

    Keyword arguments go to `DeepEnsembleLeNet`.
    """
    return build_model(DeepEnsembleLeNet, kwargs)
