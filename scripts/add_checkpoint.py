"""Ship a finished `zoo train` run as official weights: copy them into the package, measure
them with `zoo.evaluate` on the CPU, and write their registry entry and model card.

    python scripts/add_checkpoint.py runs/mc_dropout_lenet.mnist \
        --recipe recipes/mc_dropout_lenet_mnist.toml --data-dir DATA

The run must have been trained by exactly that recipe (its recipe.toml is compared), so the
registry can point users at the file that reproduces the weights. The metrics recorded are
those of `zoo eval NAME` (16 samples, seed 0) on the CPU, which the test suite re-measures.
A new sha256 resets the Hub entry to "not published".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import zoo
from zoo.atomic import atomic_write_bytes
from zoo.data import load_dataset
from zoo.evaluation import evaluate
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
from zoo.training.log import read_log, summarize_log
from zoo.training.recipe import read_recipe
from zoo.weights import CHECKPOINTS_DIR, INDEX_NAME, NOT_PUBLISHED, PretrainedWeights

REPOSITORY = Path(__file__).resolve().parent.parent
WEIGHTS_LICENSE = "cc-by-sa-3.0"  # that of the MNIST training data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("run", type=Path, help="a folder written by zoo train")
    parser.add_argument("--recipe", type=Path, required=True, help="the recipe, in recipes/")
    parser.add_argument("--data-dir", type=Path, help="data root for the evaluation")
    parser.add_argument(
        "--not-default", action="store_true", help="the bare architecture name keeps its weights"
    )
    arguments = parser.parse_args()
    try:
        entry = add_checkpoint(
            arguments.run, arguments.recipe, arguments.data_dir, not arguments.not_default
        )
    except (zoo.ZooError, ValueError) as error:
        sys.exit(f"error: {error}")
    card = write_model_card(entry, REPOSITORY)
    print(f"added {entry.name} (sha256 {entry.sha256}); wrote {card.relative_to(REPOSITORY)}")


def add_checkpoint(run: Path, recipe_path: Path, data_dir: Path | None, default: bool):
    recipe = read_recipe(recipe_path)
    split = load_dataset(recipe.data.dataset, "train", data_dir)
    train_images = len(split) - recipe.data.validation_size
    recipe = recipe.with_default_kl_weight(train_images)
    if not recipe.name.startswith(f"{recipe.model.architecture}."):
        raise ValueError(f"{recipe_path}: name must be '{recipe.model.architecture}.<tag>'")
    differing = recipe.differences(read_recipe(run / RECIPE_NAME))
    if differing:
        raise ValueError(f"{run} was not trained by {recipe_path}: {', '.join(differing)} differ")
    model = load_folder(run)
    report = evaluate(model, samples=16, seed=0, device="cpu", data_dir=data_dir, progress=True)
    log = read_log(run / LOG_NAME)
    config = read_config(run / CONFIG_NAME)
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
        recipe=str(recipe_path.resolve().relative_to(REPOSITORY)),
        training=summarize_log(log) | {"train_images": train_images},
        license=WEIGHTS_LICENSE,
        hub=_hub_entry(recipe.name, config.weights_sha256),
    )
    _install(entry, run)
    return entry


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
