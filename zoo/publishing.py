"""Publishing to the Hugging Face Hub: what a repository holds, pushed in one commit.

A published repository holds:

- ``model.safetensors`` and ``config.json``: the model, exactly as ``save_pretrained`` wrote it;
- ``README.md``: the model card (`zoo.cards`), YAML metadata with model-index evaluation
  results, then prose;
- where they are known: ``recipe.toml`` (the recipe that trained it), ``eval.json`` (the
  ``zoo eval`` report) and ``train_log.jsonl`` (the training log).

What gets pushed is a registry name (shipped weights, with the recipe from ``recipes/``), a
folder written by ``save_pretrained`` or ``zoo train``, or a model in memory (`zoo.sharing`,
which this module builds on). Before anything is uploaded, a folder is loaded strictly, so a
broken model is never published, and an evaluation report must be of these very weights.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from zoo.atomic import atomic_write_bytes
from zoo.cards import model_card
from zoo.errors import CheckpointError, ModelConfigError, PretrainedWeightsError
from zoo.factory import load_folder
from zoo.files import is_regular_file
from zoo.hub import HubReference, PushResult
from zoo.loading import resolve
from zoo.models.base import ZooModel
from zoo.pretrained import (
    CONFIG_NAME,
    EVAL_NAME,
    RECIPE_NAME,
    RECORD_NAMES,
    build_from_config,
    copy_model_files,
    read_config,
)
from zoo.report import EvaluationReport, read_folder_report
from zoo.sharing import describe, push_model, push_staged, write_card, write_evaluation
from zoo.training.log import read_folder_training
from zoo.training.recipe import Recipe, read_recipe
from zoo.weights import ModelDescription, PretrainedWeights, find_weights

SOURCE_ROOT = Path(__file__).resolve().parent.parent  # recipes/ lives here in a checkout


def push_to_hub(
    model_or_path: ZooModel | str | os.PathLike[str],
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    evaluation: EvaluationReport | None = None,
) -> PushResult:
    """Publish a model to the Hub repository ``repo_id`` ("org/name") in one commit.

    Args:
        model_or_path: a model, a registry name or a ``save_pretrained`` / ``zoo train`` folder.
        repo_id: created if it does not exist.
        revision: the branch to commit to (created from the default branch if new).
        private: make a new repository private; an existing public one is refused.
        token: a write token; defaults to HF_TOKEN, then the saved ``hf auth login``.
        commit_message: defaults to "Upload NAME with uncertainty-zoo VERSION".
        evaluation: a `zoo.evaluate` report of these weights, published as eval.json and as
            the card's model-index (a ``zoo train`` folder has its own).

    Raises:
        HubError: the repository cannot be created or written (see `zoo.errors`).
        CheckpointError: the folder does not hold a loadable model, or its eval.json is of
            other weights.
        ModelConfigError: a bad ``repo_id`` or ``revision``, or an evaluation of other weights.
    """
    options = {
        "revision": revision,
        "private": private,
        "token": token,
        "commit_message": commit_message,
        "evaluation": evaluation,
    }
    if isinstance(model_or_path, ZooModel):
        return push_model(model_or_path, repo_id, **options)

    def stage(staging: Path) -> ModelDescription:
        return _stage(model_or_path, repo_id, staging, evaluation)

    return push_staged(stage, repo_id, **options)


def _stage(
    model_or_path: str | os.PathLike[str],
    repo_id: str,
    staging: Path,
    evaluation: EvaluationReport | None,
) -> ModelDescription:
    """Write into ``staging`` every file the Hub repository ``repo_id`` gets; return what its
    card describes."""
    source = _source_to_push(model_or_path)
    if isinstance(source, str):
        return _stage_shipped(source, repo_id, staging, evaluation)
    _copy_folder(source, staging)
    if evaluation is not None:
        write_evaluation(evaluation, staging)
    entry, recipe = _describe_folder(source, repo_id, evaluation)
    write_card(model_card(entry, recipe, shipped=False), staging)
    return entry


def _source_to_push(model_or_path: str | os.PathLike[str]) -> str | Path:
    """The registry name or the folder to push."""
    source = resolve(model_or_path)
    if isinstance(source, HubReference):
        raise ModelConfigError(
            f"there is no folder {model_or_path} here, and a Hub repository is not pushed as "
            "it is: load it with zoo.load, then push the model"
        )
    return source


def _describe_folder(
    folder: Path, repo_id: str, evaluation: EvaluationReport | None
) -> tuple[ModelDescription, Recipe | None]:
    """What the card of ``folder`` pushed to ``repo_id`` says, from the files in it (and from
    ``evaluation``, which replaces its eval.json)."""
    config = read_config(folder / CONFIG_NAME)
    model = build_from_config(config, folder / CONFIG_NAME, skeleton=True)  # to count
    report = evaluation or read_folder_report(folder, config.weights_sha256, config.temperature)
    recipe = read_recipe(folder / RECIPE_NAME) if (folder / RECIPE_NAME).exists() else None
    entry = describe(
        folder,
        repo_id,
        sum(parameter.numel() for parameter in model.parameters()),
        report,
        recipe=recipe,
        training=read_folder_training(folder) or {},
    )
    return entry, recipe


def _stage_shipped(
    name: str, repo_id: str, staging: Path, evaluation: EvaluationReport | None
) -> ModelDescription:
    """Shipped weights, their recipe from the sources and their registry evaluation."""
    entry = find_weights(name)
    if entry is None:
        raise PretrainedWeightsError(f"{name!r} has no pretrained weights to publish")
    if evaluation is not None:
        raise ModelConfigError(f"{entry.name} is published with its registry evaluation")
    recipe_path = SOURCE_ROOT / entry.recipe
    if not recipe_path.is_file():
        raise CheckpointError(
            recipe_path, "missing: publish official weights from a checkout of uncertainty-zoo"
        )
    _copy_folder(entry.folder, staging, entry.sha256)
    shutil.copyfile(recipe_path, staging / RECIPE_NAME)
    EvaluationReport(entry.metrics, entry.evaluation).save_json(staging / EVAL_NAME)
    entry = dataclasses.replace(entry, hub={"repo_id": repo_id, "revision": None})
    write_card(model_card(entry, read_recipe(recipe_path)), staging)
    return entry


def _copy_folder(folder: Path, staging: Path, expected_sha256: str | None = None) -> None:
    """Copy the files to publish, then check that the copy loads strictly and sha256-checked
    (against ``expected_sha256`` too, the registry's pin for shipped weights)."""
    try:
        copy_model_files(folder, staging)
        for name in RECORD_NAMES:
            if is_regular_file(folder / name):
                shutil.copyfile(folder / name, staging / name)
        load_folder(staging, expected_sha256)
    except CheckpointError as error:
        raise type(error)(folder / error.path.name, error.detail) from None


def write_model_card(entry: PretrainedWeights, repository: Path, cards: Path | None = None) -> Path:
    """Write ``<name>.md`` into ``cards`` (default: ``model_cards/`` under ``repository``) from
    ``entry`` and its recipe in ``repository``."""
    recipe = read_recipe(repository / entry.recipe)
    path = (cards or repository / "model_cards") / f"{entry.name}.md"
    path.parent.mkdir(exist_ok=True)
    atomic_write_bytes(path, str(model_card(entry, recipe)).encode("utf-8"))
    return path
