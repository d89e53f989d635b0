"""Ship a finished `zoo train` run as official weights: copy them into the package, measure
them with `zoo.evaluate` on the CPU, and write their registry entry and model card.

    python scripts/add_checkpoint.py runs/mc_dropout_lenet.mnist \
        --recipe recipes/mc_dropout_lenet_mnist.toml --data-dir DATA

The run must have been trained by exactly that recipe (its recipe.toml is compared), so the
registry can point users at the file that reproduces the weights. A laplace_lenet run's
posterior is fitted again from its MAP weights, to check its prior precision and record how it
was chosen.

A calibrated copy of shipped weights is added from the folder `zoo calibrate` wrote:

    python scripts/add_checkpoint.py CALIBRATED --calibrated-from lenet.mnist \
        --name lenet.mnist_ts --data-dir DATA

Its weights must be those of the shipped checkpoint; its temperature is fitted again and must
agree, and the entry keeps the base's recipe and training, with the fit beside them.

The metrics recorded are those of `zoo eval NAME` (16 samples, seed 0) on the CPU, which the
test suite re-measures; so are the figures under dataset shift, those of `zoo eval NAME --shift
rotation`, `translation` and `corruption`, each step's accuracy, NLL, ECE and mean confidence,
and their means over the shifted steps. `--shift` measures them again for every shipped
checkpoint, on shifted sets built once for all of them. `--retime` evaluates every shipped
checkpoint again, one after another on the same machine, checks that its metrics are the
recorded ones, and records the new evaluation time (and the OOD threshold `zoo serve` flags at),
so that the times the README tables compare were measured alike. `--remeasure NAME...` records
the named checkpoints' metrics, provenance and figures under shift anew, for when a change to
how an architecture samples changes its random stream. A new sha256 resets the Hub entry to
"not published".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import zoo
from zoo.atomic import atomic_write_bytes
from zoo.data import load_dataset
from zoo.evaluation import evaluate
from zoo.laplace import fit_laplace
from zoo.models.laplace_lenet import LaplaceLeNet
from zoo.options import SHIFT_KINDS
from zoo.pretrained import (
    CONFIG_NAME,
    LOG_NAME,
    RECIPE_NAME,
    WEIGHTS_NAME,
    load_folder,
    read_config,
)
from zoo.publishing import write_model_card
from zoo.registry import architecture_summary
from zoo.report import flat_metrics
from zoo.shift import evaluate_shifts
from zoo.temperature import HELD_OUT_IMAGES, fit_temperature
from zoo.training.log import read_log, summarize_log
from zoo.training.recipe import read_recipe
from zoo.weights import CHECKPOINTS_DIR, INDEX_NAME, NOT_PUBLISHED, PretrainedWeights

REPOSITORY = Path(__file__).resolve().parent.parent
WEIGHTS_LICENSE = "cc-by-sa-3.0"  # that of the MNIST training data
SHIFT_STEP_KEYS = ("step", "acc", "nll", "ece", "confidence")
SHIFT_PROVENANCE_KEYS = ("samples", "seed", "device")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("run", type=Path, nargs="?", help="a folder written by zoo train")
    parser.add_argument(
        "--retime", action="store_true", help="re-measure every shipped checkpoint's eval time"
    )
    parser.add_argument(
        "--shift", action="store_true", help="re-measure every shipped checkpoint under shift"
    )
    parser.add_argument(
        "--remeasure",
        nargs="+",
        metavar="NAME",
        help="record these shipped checkpoints' metrics and figures under shift anew",
    )
    parser.add_argument("--recipe", type=Path, help="the recipe, in recipes/")
    parser.add_argument("--calibrated-from", help="the shipped checkpoint RUN calibrates")
    parser.add_argument("--name", help="with --calibrated-from: the new checkpoint's name")
    parser.add_argument("--data-dir", type=Path, help="data root for the evaluation")
    parser.add_argument(
        "--not-default", action="store_true", help="the bare architecture name keeps its weights"
    )
    arguments = parser.parse_args()
    try:
        if arguments.retime:
            retime(arguments.data_dir)
            return
        if arguments.shift:
            record_shift(arguments.data_dir)
            return
        if arguments.remeasure:
            remeasure(arguments.remeasure, arguments.data_dir)
            return
        if arguments.run is None:
            parser.error("give the RUN folder")
        if arguments.calibrated_from:
            if not arguments.name or arguments.recipe:
                parser.error("--calibrated-from takes --name, and no --recipe")
            entry = add_calibrated(
                arguments.run, arguments.calibrated_from, arguments.name, arguments.data_dir
            )
        elif arguments.recipe:
            entry = add_checkpoint(
                arguments.run, arguments.recipe, arguments.data_dir, not arguments.not_default
            )
        else:
            parser.error("give --recipe, or --calibrated-from and --name")
    except (zoo.ZooError, ValueError) as error:
        sys.exit(f"error: {error}")
    card = write_model_card(entry, REPOSITORY)
    print(f"added {entry.name} (sha256 {entry.sha256}); wrote {card.relative_to(REPOSITORY)}")


def add_checkpoint(run: Path, recipe_path: Path, data_dir: Path | None, default: bool):
    recipe = read_recipe(recipe_path)
    split = load_dataset(recipe.data.dataset, "train", data_dir)
    train_images = len(split) - recipe.data.validation_size
    recipe = recipe.with_default_kl_weight(train_images).with_default_distribution()
    if not recipe.name.startswith(f"{recipe.model.architecture}."):
        raise ValueError(f"{recipe_path}: name must be '{recipe.model.architecture}.<tag>'")
    differing = recipe.differences(read_recipe(run / RECIPE_NAME).with_default_distribution())
    if differing:
        raise ValueError(f"{run} was not trained by {recipe_path}: {', '.join(differing)} differ")
    model = load_folder(run)
    report = evaluate(model, samples=16, seed=0, device="cpu", data_dir=data_dir, progress=True)
    log = read_log(run / LOG_NAME)
    config = read_config(run / CONFIG_NAME)
    training = summarize_log(log) | {"train_images": train_images}
    if isinstance(model, LaplaceLeNet):
        training["laplace"] = _laplace_fit(model, recipe, data_dir)
    entry = PretrainedWeights(
        name=recipe.name,
        architecture=model.architecture,
        default=default,
        summary=f"{architecture_summary(model.architecture)}, trained on MNIST",
        file=f"{recipe.name}/{WEIGHTS_NAME}",
        sha256=config.weights_sha256,
        num_params=sum(parameter.numel() for parameter in model.parameters()),
        metrics=report.to_dict()["metrics"],
        evaluation=report.provenance | {"model": recipe.name},
        shift=measure_shift({recipe.name: model}, data_dir)[recipe.name],
        recipe=str(recipe_path.resolve().relative_to(REPOSITORY)),
        training=training,
        license=WEIGHTS_LICENSE,
        hub=_hub_entry(recipe.name, config.weights_sha256),
    )
    _install(entry, run)
    return entry


def _laplace_fit(model: LaplaceLeNet, recipe, data_dir: Path | None) -> dict:
    """Fit the run's posterior again from its MAP weights; check that it picks the run's
    prior precision; return how the choice was made."""
    if recipe.data.validation_size != HELD_OUT_IMAGES:
        raise ValueError(
            f"the recipe must hold out the {HELD_OUT_IMAGES:,} images zoo.laplace does"
        )
    _, fit = fit_laplace(
        model,
        samples=recipe.evaluation.samples,
        seed=recipe.evaluation.seed,
        device="cpu",
        data_dir=data_dir,
    )
    if not math.isclose(fit.prior_precision, float(model.prior_precision), rel_tol=1e-6):
        raise ValueError(
            f"the run's prior precision is {float(model.prior_precision):g}, but fitting again "
            f"gives {fit.prior_precision:g}"
        )
    return {
        "prior_precision": fit.prior_precision,
        "chosen_by": "held-out NLL",
        "held_out_nll": fit.held_out_nll,
        "map_held_out_nll": fit.map_held_out_nll,
        "evidence_prior_precision": fit.evidence_prior_precision,
        "grid": [fit.grid[0][0], fit.grid[-1][0], len(fit.grid)],
        "training_images": fit.training_images,
        "held_out_images": fit.held_out_images,
        "samples": fit.samples,
        "seed": fit.seed,
    }


def add_calibrated(folder: Path, base_name: str, name: str, data_dir: Path | None):
    base = zoo.weights.all_weights().get(base_name)
    if base is None:
        raise ValueError(f"{base_name} is not a shipped checkpoint")
    if not name.startswith(f"{base.architecture}."):
        raise ValueError(f"the name must be '{base.architecture}.<tag>', got {name!r}")
    config = read_config(folder / CONFIG_NAME)
    if config.weights_sha256 != base.sha256:
        raise ValueError(f"{folder} does not hold the weights of {base_name}")
    model = load_folder(folder)
    fit = fit_temperature(zoo.load(base_name), samples=16, seed=0, device="cpu", data_dir=data_dir)
    if not math.isclose(fit.temperature, model.temperature, rel_tol=1e-9):
        raise ValueError(
            f"{folder} has temperature {model.temperature:g}, but fitting again gives "
            f"{fit.temperature:g}"
        )
    report = evaluate(model, samples=16, seed=0, device="cpu", data_dir=data_dir, progress=True)
    calibration = {
        "of": base_name,
        "temperature": fit.temperature,
        "held_out_images": fit.images,
        "held_out_nll_before": fit.nll_before,
        "held_out_nll_after": fit.nll_after,
        "samples": fit.samples,
        "seed": fit.seed,
    }
    entry = PretrainedWeights(
        name=name,
        architecture=base.architecture,
        default=False,
        summary=f"{base.summary}, temperature-scaled",
        file=f"{name}/{WEIGHTS_NAME}",
        sha256=base.sha256,
        num_params=base.num_params,
        metrics=report.to_dict()["metrics"],
        evaluation=report.provenance | {"model": name},
        shift=measure_shift({name: model}, data_dir)[name],
        recipe=base.recipe,
        training=base.training | {"calibration": calibration},
        license=base.license,
        hub=_hub_entry(name, base.sha256),
    )
    _install(entry, folder)
    return entry


def retime(data_dir: Path | None) -> None:
    """Evaluate every shipped checkpoint again and record its evaluation's wall time."""
    for name, entry in zoo.weights.all_weights().items():
        report = zoo.evaluate(name, samples=16, seed=0, device="cpu", data_dir=data_dir)
        measured = flat_metrics(report.to_dict()["metrics"])
        for key, value in flat_metrics(entry.metrics).items():
            if not math.isclose(measured[key], value, abs_tol=1e-4):
                raise ValueError(f"{name}: {key} is now {measured[key]:g}, not {value:g}")
        evaluation = entry.evaluation | {
            key: report.provenance[key] for key in ("ood_threshold", "wall_time_s", "created")
        }
        _install(dataclasses.replace(entry, evaluation=evaluation), entry.folder)
        print(f"{name}: {report.provenance['wall_time_s']:.2f} s")


def remeasure(names: list[str], data_dir: Path | None) -> None:
    """Evaluate the named shipped checkpoints again and record what they measure now: their
    metrics, the evaluation's provenance and the figures under shift, with the same weights.
    For when an architecture's sampling changes, and with it the random stream its samples
    come from; it prints each metric that moved."""
    entries = zoo.weights.all_weights()
    unknown = [name for name in names if name not in entries]
    if unknown:
        raise ValueError(f"not shipped checkpoints: {', '.join(unknown)}")
    models = {name: zoo.load(name) for name in names}
    shift = measure_shift(models, data_dir)
    for name, model in models.items():
        entry = entries[name]
        report = evaluate(model, samples=16, seed=0, device="cpu", data_dir=data_dir)
        metrics = report.to_dict()["metrics"]
        before, after = flat_metrics(entry.metrics), flat_metrics(metrics)
        for key, value in after.items():
            if value != before[key]:
                print(f"{name}: {key} {before[key]:.6g} -> {value:.6g}")
        updated = dataclasses.replace(
            entry,
            metrics=metrics,
            evaluation=report.provenance | {"model": name},
            shift=shift[name],
        )
        _install(updated, entry.folder)
        write_model_card(updated, REPOSITORY)


def measure_shift(models: dict, data_dir: Path | None) -> dict[str, dict]:
    """Each model's figures under every shift, as `zoo eval --shift KIND` measures them on the
    CPU (16 samples, seed 0), on sets built once for all the models."""
    recorded: dict[str, dict] = {name: {} for name in models}
    for kind in SHIFT_KINDS:
        reports = evaluate_shifts(
            list(models.items()), kind, samples=16, seed=0, device="cpu", data_dir=data_dir
        )
        for name, report in zip(models, reports, strict=True):
            steps = [{key: step[key] for key in SHIFT_STEP_KEYS} for step in report.steps]
            recorded[name][kind] = {"summary": report.summary(), "steps": steps}
            provenance = {key: report.provenance[key] for key in SHIFT_PROVENANCE_KEYS}
            recorded[name] |= provenance  # the same for every kind
            print(f"{name}: {kind} {report.summary()} in {report.provenance['wall_time_s']} s")
    return recorded


def record_shift(data_dir: Path | None) -> None:
    """Measure every shipped checkpoint under shift again and record the figures."""
    entries = zoo.weights.all_weights()
    recorded = measure_shift({name: zoo.load(name) for name in entries}, data_dir)
    for name, entry in entries.items():
        updated = dataclasses.replace(entry, shift=recorded[name])
        _install(updated, entry.folder)
        write_model_card(updated, REPOSITORY)


def _hub_entry(name: str, sha256: str) -> dict:
    current = zoo.weights.all_weights().get(name)
    return current.hub if current is not None and current.sha256 == sha256 else NOT_PUBLISHED


def _install(entry: PretrainedWeights, run: Path) -> None:
    folder = entry.folder
    folder.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        atomic_write_bytes(folder / name, (run / name).read_bytes())
    index_path = CHECKPOINTS_DIR / INDEX_NAME
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    if entry.default:
        for other in index.values():
            if other["architecture"] == entry.architecture:
                other["default"] = False
    index[entry.name] = entry.to_json_dict()
    text = json.dumps(dict(sorted(index.items())), indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(index_path, text.encode("utf-8"))
    zoo.weights.all_weights.cache_clear()


if __name__ == "__main__":
    main()
