"""What the zoo knows about a model, for ``zoo list`` and ``zoo info``."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

from zoo.factory import create_model
from zoo.hub import HubReference, download
from zoo.loading import resolve
from zoo.models.base import ZooModel
from zoo.options import SHIFT_KINDS
from zoo.pretrained import (
    CONFIG_NAME,
    RECIPE_NAME,
    RECORD_NAMES,
    WEIGHTS_NAME,
    build_from_config,
    build_skeleton,
    read_config,
)
from zoo.registry import architecture_summary
from zoo.report import flat_metrics, format_metric, read_folder_report
from zoo.text import escaped
from zoo.training.log import read_folder_training
from zoo.weights import PretrainedWeights, find_weights, list_weights


def model_info(name_or_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Describe shipped weights, an architecture, a ``save_pretrained`` folder or a Hub
    repository, without loading weights (from the Hub: config.json and, where there are
    any, eval.json, the recipe and the training log).

    The keys are: name, summary, architecture, kwargs (the constructor's arguments), num_params,
    num_classes, class_labels, preprocessing, temperature, stochastic, weights (file and
    sha256, or None), metrics, recipe, license, training and hub (None where unknown). A bare
    architecture name is described with its default weights, which is what ``zoo.load`` gives
    for it.

    Raises:
        UnknownModelError: neither an existing folder nor a registered name.
        ConfigFileError: the folder's config.json cannot be read.
        HubError: the Hub repository cannot be read (see `zoo.errors`).
    """
    source = resolve(name_or_path)
    if isinstance(source, HubReference):
        return _hub_info(source)
    if isinstance(source, Path):
        return _folder_info(source)
    entry = find_weights(source)
    if entry is not None:
        return _weights_info(source, entry)
    model = build_skeleton(lambda: create_model(source))  # described, never run
    return _describe(source, architecture_summary(source), model, weights=None)


def matching_names(pattern: str) -> list[str]:
    """What ``zoo list PATTERN`` shows: each shipped checkpoint whose name or architecture
    matches, then each matching architecture that has no weights."""
    from zoo.factory import list_models

    architectures = list_models(pattern)
    weights = [
        name
        for name in list_weights()
        if fnmatch.fnmatchcase(name, pattern) or name.partition(".")[0] in architectures
    ]
    with_weights = {name.partition(".")[0] for name in list_weights()}
    return weights + [name for name in architectures if name not in with_weights]


def _weights_info(name: str, entry: PretrainedWeights) -> dict[str, Any]:
    config_path = entry.folder / CONFIG_NAME
    model = build_from_config(read_config(config_path), config_path, skeleton=True)
    weights = {"file": str(entry.folder / WEIGHTS_NAME), "sha256": entry.sha256}
    summary = entry.summary if name == entry.name else f"{entry.summary} ({entry.name})"
    info = _describe(name, summary, model, weights)
    info |= {
        "metrics": entry.metrics,
        "shift": {kind: entry.shift[kind]["summary"] for kind in SHIFT_KINDS if kind in entry.shift}
        or None,
        "recipe": entry.recipe,
        "license": entry.license,
        "training": entry.training,
        "hub": entry.hub,
    }
    return info


def _folder_info(folder: Path) -> dict[str, Any]:
    config = read_config(folder / CONFIG_NAME)
    model = build_from_config(config, folder / CONFIG_NAME, skeleton=True)
    weights = {"file": str(folder / WEIGHTS_NAME), "sha256": config.weights_sha256}
    summary = f"saved by uncertainty-zoo {config.zoo_version}"
    return _describe(str(folder), summary, model, weights)


def _hub_info(reference: HubReference) -> dict[str, Any]:
    """From config.json and, where the repository has them, eval.json, the recipe and the
    training log: never the weights."""
    optional = list(RECORD_NAMES)
    snapshot = download(reference, [CONFIG_NAME], optional=optional)
    folder, where = snapshot.folder, f"{reference.repo_id}@{snapshot.commit}"
    config = read_config(folder / CONFIG_NAME)
    model = build_from_config(config, folder / CONFIG_NAME, skeleton=True)  # no memory
    weights = {"file": f"{WEIGHTS_NAME} in {where}", "sha256": config.weights_sha256}
    summary = f"{architecture_summary(config.architecture)}; on the Hugging Face Hub"
    info = _describe(str(reference), summary, model, weights)
    report = read_folder_report(folder, config.weights_sha256, config.temperature)
    return info | {
        "metrics": report.metrics if report else None,
        "recipe": f"{RECIPE_NAME} in {where}" if (folder / RECIPE_NAME).exists() else None,
        "training": read_folder_training(folder),
        "hub": {"repo_id": reference.repo_id, "revision": snapshot.commit},
    }


def _describe(
    name: str, summary: str, model: ZooModel, weights: dict[str, str] | None
) -> dict[str, Any]:
    return {
        "name": name,
        "summary": summary,
        "architecture": model.architecture,
        "kwargs": model.architecture_kwargs(),
        "num_params": sum(parameter.numel() for parameter in model.parameters()),
        "num_classes": model.num_classes,
        "class_labels": model.class_labels,
        "preprocessing": {"mean": model.mean, "std": model.std},
        "temperature": model.temperature,
        "stochastic": model.stochastic,
        "weights": weights,
        "metrics": None,
        "shift": None,
        "recipe": None,
        "license": None,
        "training": None,
        "hub": None,
    }


_TABLE_METRICS = {"acc": "ACC", "nll": "NLL", "ece": "ECE", "auroc": "OOD AUROC"}


def format_model_table(infos: list[dict[str, Any]]) -> str:
    """One row per model: name, parameters, headline metrics ("-" without weights), summary."""
    header = ["NAME", "PARAMS", *_TABLE_METRICS.values(), "SUMMARY"]
    rows = [header]
    for info in infos:
        found = flat_metrics(info["metrics"] or {})
        values = [format_metric(key, found[key]) if key in found else "-" for key in _TABLE_METRICS]
        name, summary = escaped(info["name"]), escaped(info["summary"])
        rows.append([name, f"{info['num_params']:,}", *values, summary])
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = [
        "  ".join(
            [*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)), row[-1]]
        )
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def format_model_info(info: dict[str, Any]) -> str:
    """Everything in ``info`` as aligned "field  value" lines.

    Text from files (labels, versions, the training log, Hub ids) is shown `escaped`, so no
    file can write escape sequences or extra lines to the terminal.
    """
    weights = info["weights"]
    kwargs = ", ".join(f"{key}={value!r}" for key, value in info["kwargs"].items())
    metrics = flat_metrics(info["metrics"] or {})
    lines = {
        "name": info["name"],
        "summary": info["summary"],
        "architecture": info["architecture"],
        "arguments": kwargs or "none",
        "parameters": f"{info['num_params']:,}",
        "stochastic": "yes" if info["stochastic"] else "no",
        "classes": f"{info['num_classes']}: {' '.join(info['class_labels'])}",
        "preprocessing": "uint8 / 255, then (x - {mean}) / {std}".format(**info["preprocessing"]),
        "temperature": _format_temperature(info["temperature"]),
        "weights": [weights["file"], f"sha256 {weights['sha256']}"] if weights else "none",
        "metrics": ", ".join(f"{key} {value:.4g}" for key, value in metrics.items()) or "none",
        "under shift": _format_shift(info["shift"]),
        "recipe": info["recipe"] or "none",
        "training": _format_training(info["training"]),
        "hub": _format_hub(info["hub"]),
        "license": info["license"] or "none",
    }
    width = max(len(field) for field in lines)
    indent = "\n" + " " * (width + 2)
    return "\n".join(
        f"{field:<{width}}  {indent.join(map(escaped, _as_lines(value)))}"
        for field, value in lines.items()
    )


def _format_shift(shift: dict[str, dict[str, float]] | None) -> str | list[str]:
    """The means over the shifted steps of each shift measured, a line per kind."""
    if not shift:
        return "not measured (zoo eval MODEL --shift KIND measures it)"
    return [
        f"{kind}: mean acc {summary['acc']:.4g}, nll {summary['nll']:.4g}, ece {summary['ece']:.4g}"
        for kind, summary in shift.items()
    ]


def _format_temperature(temperature: float) -> str:
    if temperature == 1.0:
        return "1 (the logits as trained)"
    return f"{temperature:.4g} (the logits are divided by it; see zoo calibrate)"


def _as_lines(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def _format_training(training: dict[str, Any] | None) -> str | list[str]:
    if not training:
        return "unknown"
    minutes = training["seconds"] / 60
    lines = [f"{training['epochs']} epochs in {minutes:.1f} min on {training['hardware']}"]
    laplace, calibration = training.get("laplace"), training.get("calibration")
    if laplace:
        lines.append(
            f"then a last-layer Laplace posterior, prior precision "
            f"{laplace['prior_precision']:.4g} (by held-out NLL)"
        )
    if calibration:
        lines.append(
            f"then temperature scaling: T = {calibration['temperature']:.4g} on "
            f"{calibration['held_out_images']:,} held-out images (of {calibration['of']})"
        )
    return lines if len(lines) > 1 else lines[0]


def _format_hub(hub: dict[str, str | None] | None) -> str:
    if not hub or not hub.get("repo_id"):
        return "not published"
    return f"{hub['repo_id']} @ {hub['revision']}"
