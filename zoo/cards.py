"""Model cards, generated from what is known about the weights: a registry entry, or what
``zoo push`` gathers from a model folder (see `zoo.publishing`), and the recipe.

A card is a huggingface_hub `ModelCard`: YAML metadata with a model-index of `EvalResult`s, so
that the Hub renders the evaluation, then Markdown for people. Everything in it comes from a
real training run and a real ``zoo eval``; nothing is typed by hand, and what is not known
(no recipe, no evaluation) is said, not made up. A card is the README.md of the model's Hub
repository, so once the weights have a repository it links the files pushed beside it and
gives the ``zoo.from_pretrained`` line that downloads them.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from zoo.metrics.suite import GROUP_TITLES, SPECS
from zoo.options import DATASET_HUB_IDS, DATASET_TITLES, SHIFT_KINDS
from zoo.pretrained import RECIPE_NAME
from zoo.registry import registered_class
from zoo.report import flat_metrics, format_metric
from zoo.weights import ModelDescription

if TYPE_CHECKING:
    from zoo.training.recipe import Recipe


_HUB_METRIC_TYPES = {"acc": "accuracy"}

_FASHION_MNIST_CITATION = """@article{xiao2017,
  title   = {Fashion-{MNIST}: a Novel Image Dataset for Benchmarking Machine Learning Algorithms},
  author  = {Xiao, Han and Rasul, Kashif and Vollgraf, Roland},
  journal = {arXiv:1708.07747}, year = {2017}
}"""

_OVADIA_CITATION = """@inproceedings{ovadia2019,
  title     = {Can You Trust Your Model's Uncertainty? Evaluating Predictive Uncertainty Under
               Dataset Shift},
  author    = {Ovadia, Yaniv and Fertig, Emily and Ren, Jie and Nado, Zachary and Sculley, D. and
               Nowozin, Sebastian and Dillon, Joshua V. and Lakshminarayanan, Balaji and
               Snoek, Jasper},
  booktitle = {Advances in Neural Information Processing Systems}, year = {2019}
}"""

_MNIST_C_CITATION = """@article{mu2019,
  title   = {{MNIST-C}: A Robustness Benchmark for Computer Vision},
  author  = {Mu, Norman and Gilmer, Justin},
  journal = {arXiv:1906.02337}, year = {2019}
}"""


def model_card(
    entry: ModelDescription, recipe: Recipe | None, *, shipped: bool = True
) -> ModelCard:
    """The card of ``entry``, trained by ``recipe`` (None when it is not known).

    ``shipped`` weights are the official ones, inside the package and named in the registry;
    others are a user's own, pushed from a folder and named by their Hub id.
    """
    results = _eval_results(entry)
    data = ModelCardData(
        model_name=entry.name,
        license=entry.license,
        library_name="uncertainty-zoo",
        pipeline_tag="image-classification",
        tags=["uncertainty", "pytorch", "safetensors", "mnist", entry.architecture],
        datasets=_datasets(entry, recipe),
        metrics=["accuracy", "nll", "ece", "auroc"] if results else None,
        eval_results=results or None,
    )
    sections = [
        f"# {entry.name}",
        _introduction(entry),
        _loading(entry, shipped),
        _intended_use(entry),
        _training(entry, recipe, shipped),
        _evaluation(entry, shipped),
        _under_shift(entry, shipped),
        _reading_uncertainty(entry),
        _limitations(entry),
        _citations(entry),
    ]
    body = "\n\n".join(section for section in sections if section)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def _datasets(entry: ModelDescription, recipe: Recipe | None) -> list[str] | None:
    if entry.evaluation:
        return [DATASET_HUB_IDS[entry.evaluation["dataset"]["name"]]]
    return [DATASET_HUB_IDS[recipe.data.dataset]] if recipe else None


def _eval_results(entry: ModelDescription) -> list[EvalResult]:
    evaluation = entry.evaluation
    results = []
    for group, values in entry.metrics.items():
        dataset = evaluation["ood_dataset"] if group == "ood" else evaluation["dataset"]
        for key, value in values.items():
            if value is None or not math.isfinite(value):
                continue
            results.append(
                EvalResult(
                    task_type="image-classification",
                    dataset_type=DATASET_HUB_IDS[dataset["name"]],
                    dataset_name=DATASET_TITLES[dataset["name"]],
                    dataset_split="test",
                    metric_type=_HUB_METRIC_TYPES.get(key, key),
                    metric_name=_metric_title(group, key, evaluation),
                    metric_value=round(value, 6),
                )
            )
    return results


def _metric_title(group: str, key: str, evaluation: dict) -> str:
    label = SPECS[key].label
    if group == "ood":
        return f"OOD {label} ({evaluation['ood_score']} score)"
    return label


def _about(entry: ModelDescription) -> tuple[str, list[str]]:
    """What the architecture is, and its citations (BibTeX), as its model class says; its
    summary alone for an architecture whose builder does not name its class."""
    model_class = registered_class(entry.architecture)
    about = getattr(model_class, "about", "")
    if not about:
        return entry.summary, []
    return about, list(getattr(model_class, "references", ()))


def _is_stochastic(entry: ModelDescription) -> bool:
    return getattr(registered_class(entry.architecture), "stochastic", True)


def _hub_repo(entry: ModelDescription) -> str | None:
    return entry.hub.get("repo_id")


def _introduction(entry: ModelDescription) -> str:
    about, _ = _about(entry)
    introduction = (
        f"An uncertainty-aware MNIST digit classifier from uncertainty-zoo: {about}. "
        f"It has {entry.num_params:,} parameters."
    )
    if not entry.metrics:
        return _paragraph(f"{introduction} It has not been evaluated yet.")
    samples = entry.evaluation["samples"]
    metrics = flat_metrics(entry.metrics)
    text = (
        f"{introduction} On the MNIST test set, with {_count(samples, 'sample')}, it reaches "
        f"{format_metric('acc', metrics['acc'])} accuracy, NLL "
        f"{format_metric('nll', metrics['nll'])} and ECE {format_metric('ece', metrics['ece'])}"
    )
    if "auroc" not in metrics:
        return _paragraph(f"{text}.")
    ood_name = DATASET_TITLES[entry.evaluation["ood_dataset"]["name"]]
    return _paragraph(
        f"{text}, and tells {ood_name} apart from MNIST with AUROC "
        f"{format_metric('auroc', metrics['auroc'])}."
    )


def _loading(entry: ModelDescription, shipped: bool) -> str:
    repo_id = _hub_repo(entry)
    if repo_id:
        where = "`pip install uncertainty-zoo`, then:"
        loads = [f'model = zoo.from_pretrained("{repo_id}")  # downloaded once, sha256-checked']
        if shipped:
            loads.append(f'model = zoo.load("{entry.name}")  # the same weights, in the package')
    else:
        where = "The weights ship inside the `uncertainty-zoo` package and load offline, "
        where += "sha256-checked:"
        loads = [
            f'model = zoo.load("{entry.name}")  # or zoo.models.{entry.architecture}'
            f'(weights="{entry.tag}")'
        ]
    name = entry.name if shipped else repo_id
    lines = [
        "## How to use",
        where,
        "```python",
        "import zoo",
        "",
        *loads,
        "prediction = model.predict(images, samples=16)  # uint8 images (B, 28, 28)",
        "prediction.probs, prediction.entropy, prediction.mutual_information",
        "```",
        "From the command line: "
        f"`zoo eval {name}` measures it, `zoo predict {name} digit.png` classifies "
        "your own images.",
    ]
    return "\n".join(lines)


def _intended_use(entry: ModelDescription) -> str:
    return "## Intended use\n\n" + _paragraph(
        "Classifying 28x28 grayscale handwritten digits (light on dark, like MNIST), with an "
        "uncertainty estimate for each prediction: to reject the predictions it is unsure of, "
        "to flag inputs unlike its training data, and as a reference point for research on "
        "uncertainty estimation. It is a small research model, not a component of any system "
        "where a wrong digit has consequences."
    )


def _training(entry: ModelDescription, recipe: Recipe | None, shipped: bool) -> str:
    if recipe is None:
        return "## Training\n\nNo recipe was published with these weights."
    training = entry.training
    data = recipe.data
    optimizer, schedule = recipe.optimizer, recipe.schedule
    settings = [
        f"- model arguments: {_kwargs(recipe)}",
        f"- optimiser: {optimizer.name}, lr {optimizer.lr:g}, weight decay "
        f"{optimizer.weight_decay:g}; schedule: {schedule.name}",
        f"- {recipe.training.epochs} epochs of batches of {recipe.training.batch_size}, "
        f"{_count(recipe.training.loss_samples, 'sample')} per image in the loss, label smoothing "
        f"{recipe.training.label_smoothing:g}",
        f"- augmentation: {_augmentation(recipe)}",
        f"- weights kept: {_selection(recipe)}",
        f"- seed {recipe.seed}",
    ]
    if recipe.training.kl_weight is not None:
        settings.insert(3, f"- ELBO with KL weight {recipe.training.kl_weight:.6g}")
    lines = [
        "## Training",
        "",
        _paragraph(_training_data(data.validation_size, shipped)),
        "",
        _recipe_line(entry),
        "",
        "```bash",
        f"zoo train {_recipe_file(entry)}",
        "```",
        "",
        *settings,
    ]
    if training:
        minutes = training["seconds"] / 60
        lines += [
            "",
            _paragraph(
                f"Training took {minutes:.1f} minutes ({training['epochs']} epochs) on "
                f"{training['hardware']}, with torch {training['torch']}."
            ),
        ]
    for fitted in (
        _laplace_fit(training.get("laplace")),
        _calibration(training.get("calibration")),
    ):
        if fitted:
            lines += ["", _paragraph(fitted)]
    return "\n".join(lines)


def _laplace_fit(fit: dict[str, Any] | None) -> str:
    """What the last-layer Laplace fit after training did, as the registry records it."""
    if not fit:
        return ""
    low, high, steps = fit["grid"]
    return (
        f"After training, the last layer's posterior was fitted: its Gauss-Newton on the "
        f"{fit['training_images']:,} training images, and the prior precision "
        f"{fit['prior_precision']:.4g}, the one of {steps} values from {low:g} to {high:g} "
        f"whose predictive distribution ({fit['samples']} samples, seed {fit['seed']}) had the "
        f"lowest NLL on the {fit['held_out_images']:,} held-out images: "
        f"{fit['held_out_nll']:.4f}, against {fit['map_held_out_nll']:.4f} for the MAP "
        f"network alone. The marginal likelihood would have chosen "
        f"{fit['evidence_prior_precision']:.4g}."
    )


def _calibration(fit: dict[str, Any] | None) -> str:
    """What temperature scaling after training did, as the registry records it."""
    if not fit:
        return ""
    return (
        f"These are the weights of `{fit['of']}`, temperature-scaled with `zoo calibrate`: "
        f"its logits are divided by T = {fit['temperature']:.4f}, the temperature that "
        f"minimised the NLL on the {fit['held_out_images']:,} held-out images "
        f"({fit['held_out_nll_before']:.4f} at T = 1, {fit['held_out_nll_after']:.4f} at T). "
        "The test set played no part in it."
    )


def _training_data(validation_size: int, shipped: bool) -> str:
    text = (
        f"Trained on the MNIST training set (CC BY-SA 3.0, Y. LeCun and C. Cortes) but for its "
        f"last {validation_size:,} images, which were held out for validation"
    )
    if not shipped:
        return f"{text}."
    return (
        f"{text}: the recipe's settings were compared on them, with FashionMNIST's training "
        "images as the unseen data for OOD detection."
    )


def _recipe_file(entry: ModelDescription) -> str:
    """The recipe as the card's reader finds it: in the Hub repository once there is one."""
    return RECIPE_NAME if _hub_repo(entry) else entry.recipe


def _recipe_line(entry: ModelDescription) -> str:
    recipe = _recipe_file(entry)
    line = f"Recipe [`{recipe}`]({recipe})"
    if recipe != entry.recipe:
        line += f" (`{entry.recipe}` in the uncertainty-zoo sources)"
    return f"{line}, run with:"


def _augmentation(recipe: Recipe) -> str:
    data = recipe.data
    if data.max_rotation == 0 and data.max_scale == 0:
        return f"random shifts of up to {data.max_shift} px" if data.max_shift else "none"
    return (
        f"random affine maps: shifts of up to {data.max_shift} px, rotations of up to "
        f"{data.max_rotation:g} degrees, scaling by up to {100 * data.max_scale:g}%"
    )


def _kwargs(recipe: Recipe) -> str:
    if not recipe.model.kwargs:
        return "the defaults"
    return ", ".join(f"{key}={value!r}" for key, value in recipe.model.kwargs.items())


def _selection(recipe: Recipe) -> str:
    if recipe.training.select == "best_nll":
        return "those of the epoch with the lowest validation NLL"
    return "those of the last epoch"


def _evaluation(entry: ModelDescription, shipped: bool) -> str:
    if not entry.metrics:
        return f"## Evaluation\n\nNot evaluated yet: `zoo eval {entry.name}` measures it."
    lines = [
        "## Evaluation",
        "",
        _paragraph(_measurement(entry, shipped)),
        "",
        "| group | metric | value |",
        "|---|---|---|",
    ]
    for group, values in entry.metrics.items():
        for key, value in values.items():
            value_text = _card_value(key, value)
            lines.append(f"| {GROUP_TITLES[group]} | {SPECS[key].label} | {value_text} |")
    lines += [
        "",
        "Lower is better for NLL, Brier, the calibration errors, AURC, AUGRC, Risk@80Cov and "
        "FPR95; higher for the rest. Every metric is defined in the docstrings of `zoo.metrics`.",
    ]
    return "\n".join(lines)


def _measurement(entry: ModelDescription, shipped: bool) -> str:
    """How the metrics were measured: the command, software, samples and data."""
    evaluation = entry.evaluation
    command = f"zoo eval {entry.name}" if shipped else "zoo eval"
    text = (
        f"Measured by `{command}` (uncertainty-zoo {evaluation['versions']['zoo']}, torch "
        f"{evaluation['versions']['torch']}): {_count(evaluation['samples'], 'sample')} per "
        f"image, seed {evaluation['seed']}, on the {evaluation['dataset']['size']:,} images of "
        "the MNIST test set"
    )
    ood = evaluation.get("ood_dataset")
    if not ood:
        return f"{text}; OOD detection was not measured."
    return (
        f"{text}; OOD detection scores the {ood['size']:,} {DATASET_TITLES[ood['name']]} test "
        f"images against them by {_score_name(evaluation['ood_score'])}."
    )


# The shifts a card summarises, and how it names each.
_SHIFT_ROWS = {
    "rotation": "rotated by 15 to 180 degrees (12 steps)",
    "translation": "translated by 2 to 26 pixels (13 steps)",
    "corruption": "with each of the 15 MNIST-C corruptions",
}


_MOVES = {"rotation": "rotated", "translation": "translated"}


def _under_shift(entry: ModelDescription, shipped: bool) -> str:
    """The means over the shifted steps of each shift measured, and how they were measured."""
    if not entry.shift:
        return ""
    shift = entry.shift
    command = f"zoo eval {entry.name}" if shipped else "zoo eval"
    kinds = [kind for kind in SHIFT_KINDS if kind in shift]
    named = [f"`--shift {kind}`" for kind in kinds]
    options = " and ".join([", ".join(named[:-1]), named[-1]] if len(named) > 1 else named)
    shifts = []
    moved = [verb for kind, verb in _MOVES.items() if kind in kinds]
    if moved:
        shifts.append(f"{' and '.join(moved)} step by step as Ovadia et al. (2019) shift them")
    if "corruption" in kinds:
        shifts.append(
            "corrupted in the fifteen ways of MNIST-C (Mu and Gilmer, 2019), each generated on "
            "the fly at one severity"
        )
    text = (
        f"Measured by `{command}` with {options}, {_count(shift['samples'], 'sample')} per "
        f"image and seed {shift['seed']}, on {shift['device']}: the MNIST test images "
        f"{', and '.join(shifts)}. The figures are means over the shifted steps; the unshifted "
        "images are left out. `zoo eval --shift` prints every step."
    )
    lines = [
        "## Under dataset shift",
        "",
        _paragraph(text),
        "",
        "| MNIST test images | mean Acc | mean NLL | mean ECE |",
        "|---|---|---|---|",
    ]
    for kind in kinds:
        summary = shift[kind]["summary"]
        figures = " | ".join(format_metric(key, summary[key]) for key in ("acc", "nll", "ece"))
        lines.append(f"| {_SHIFT_ROWS[kind]} | {figures} |")
    return "\n".join(lines)


def _card_value(key: str, value: float) -> str:
    """As `zoo eval` prints it, with more digits for small percentages such as AURC."""
    if SPECS[key].percent and 0 < value < 0.01:
        return f"{100 * value:.4f}%"
    return format_metric(key, value)


def _score_name(score: str) -> str:
    return {
        "entropy": "predictive entropy",
        "msp": "one minus the maximum probability",
        "mi": "mutual information",
    }[score]


def _reading_uncertainty(entry: ModelDescription) -> str:
    text = (
        "`prediction.entropy` is the total uncertainty: the entropy of the averaged "
        "probabilities. It splits into `prediction.aleatoric`, the mean entropy of the "
        "individual samples (the input itself is ambiguous, e.g. a digit that could be a 4 or "
        "a 9), and `prediction.mutual_information`, how much the samples disagree (the model "
        "has not seen inputs like this one). Reject inputs with high entropy to trade coverage "
        "for accuracy; look at mutual information to tell unfamiliar inputs from ambiguous ones."
    )
    if not _is_stochastic(entry):
        text += (
            " This deterministic baseline has one sample, so its mutual information is always "
            "0 and all its uncertainty shows as entropy."
        )
    return "## Reading the uncertainty\n\n" + _paragraph(text)


def _limitations(entry: ModelDescription) -> str:
    text = (
        "It knows only centred 28x28 digits, light on a dark background: photos of digits need "
        "the same preprocessing as MNIST (`zoo predict` pads, resizes and can invert them). "
        "OOD detection was measured against FashionMNIST only; other kinds of unfamiliar input "
        "may get confident predictions. The uncertainty estimates are approximate, and they "
        "are calibrated on MNIST's test distribution: under distribution shift they are worse"
        + (", as measured above." if entry.shift else ".")
    )
    if _is_stochastic(entry):
        text += " Predictions are stochastic: fix a seed (`torch.manual_seed`) to repeat them."
    return "## Limitations\n\n" + _paragraph(text)


def _citations(entry: ModelDescription) -> str:
    _, entries = _about(entry)
    if entry.evaluation.get("ood_dataset"):
        entries = [*entries, _FASHION_MNIST_CITATION]
    if entry.shift:
        entries = [*entries, _OVADIA_CITATION, _MNIST_C_CITATION]
    if not entries:
        return ""
    return "## Citations\n\n```bibtex\n" + "\n\n".join(entries) + "\n```"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _paragraph(text: str) -> str:
    return textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False)
