"""Pushing a model to the Hugging Face Hub: the staging, the card and the one commit.

This module lives below the models, which call it from ``ZooModel.push_to_hub``, and so it
works with what a model in memory has: its files as ``save_pretrained`` writes them, an
evaluation report, and a card made from them. `zoo.publishing` builds on it to push
registered names and model folders, which it loads first.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import ModelCard

from zoo._version import __version__
from zoo.atomic import atomic_write_bytes
from zoo.cards import model_card
from zoo.errors import ModelConfigError
from zoo.hub import PushResult, check_branch, parse_reference, upload_folder
from zoo.pretrained import CONFIG_NAME, EVAL_NAME, RECIPE_NAME, read_config
from zoo.pretrained import save_pretrained as save_model_files
from zoo.registry import architecture_summary
from zoo.report import EvaluationReport, report_temperature
from zoo.text import shown
from zoo.weights import ModelDescription

if TYPE_CHECKING:
    from zoo.models.base import ZooModel
    from zoo.training.recipe import Recipe

CARD_NAME = "README.md"

# Writes a repository's files into the staging folder it is given; returns what its card says.
Stage = Callable[[Path], ModelDescription]


def push_model(
    model: ZooModel,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    evaluation: EvaluationReport | None = None,
) -> PushResult:
    """Publish ``model`` to the Hub repository ``repo_id`` in one commit: its weights,
    config.json and a model card, and ``evaluation`` as eval.json and the card's results.
    See `zoo.publishing.push_to_hub` for the arguments and errors."""

    def stage(staging: Path) -> ModelDescription:
        save_model_files(model, staging)
        if evaluation is not None:
            write_evaluation(evaluation, staging)
        count = sum(parameter.numel() for parameter in model.parameters())
        entry = describe(staging, repo_id, count, evaluation, recipe=None, training={})
        write_card(model_card(entry, None, shipped=False), staging)
        return entry

    return push_staged(
        stage,
        repo_id,
        revision=revision,
        private=private,
        token=token,
        commit_message=commit_message,
        evaluation=evaluation,
    )


def push_staged(
    stage: Stage,
    repo_id: str,
    *,
    revision: str | None,
    private: bool | None,
    token: str | None,
    commit_message: str | None,
    evaluation: EvaluationReport | None,
) -> PushResult:
    """Check the repository, branch and evaluation, let ``stage`` write the files into a
    temporary folder, and upload that folder in one commit."""
    target, branch = check_repo_id(repo_id), check_branch(revision)
    if evaluation is not None and not isinstance(evaluation, EvaluationReport):
        raise ModelConfigError(
            f"evaluation must be a zoo.evaluate report, not {type(evaluation).__name__}"
        )
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as staging:
        entry = stage(Path(staging))
        message = commit_message or f"Upload {entry.name} with uncertainty-zoo {__version__}"
        return upload_folder(
            Path(staging), target, revision=branch, private=private, token=token, message=message
        )


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is "org/name", else a `ModelConfigError`."""
    reference = parse_reference(repo_id)
    if reference is None or reference.revision is not None:
        raise ModelConfigError(
            f"--repo-id must be a Hub repository id, 'org/name', not {shown(repo_id)}; "
            "give a branch with --revision"
        )
    return reference.repo_id


def describe(
    folder: Path,
    repo_id: str,
    num_params: int,
    report: EvaluationReport | None,
    *,
    recipe: Recipe | None,
    training: dict[str, object],
) -> ModelDescription:
    """What the card of the model files in ``folder``, pushed to ``repo_id``, says."""
    config = read_config(folder / CONFIG_NAME)
    return ModelDescription(
        name=repo_id,
        architecture=config.architecture,
        summary=architecture_summary(config.architecture),
        sha256=config.weights_sha256,
        num_params=num_params,
        metrics=report.metrics if report else {},
        evaluation=report.provenance if report else {},
        shift={},
        recipe=RECIPE_NAME if recipe else "",
        training=training,
        license=None,
        hub={"repo_id": repo_id, "revision": None},
    )


def write_evaluation(evaluation: EvaluationReport, staging: Path) -> None:
    """Write ``evaluation`` as eval.json, once it is checked to be of the staged weights."""
    evaluated = evaluation.provenance.get("weights_sha256")
    config = read_config(staging / CONFIG_NAME)
    if evaluated != config.weights_sha256:
        raise ModelConfigError(
            f"the evaluation is of weights with sha256 {evaluated}, not of these "
            f"({config.weights_sha256}); evaluate the model being pushed"
        )
    evaluated_at = report_temperature(evaluation.provenance)
    if evaluated_at != config.temperature:
        raise ModelConfigError(
            f"the evaluation is of these weights at temperature {evaluated_at:g}, not at the "
            f"model's {config.temperature:g}; evaluate the model being pushed"
        )
    evaluation.save_json(staging / EVAL_NAME)


def write_card(card: ModelCard, staging: Path) -> None:
    atomic_write_bytes(staging / CARD_NAME, str(card).encode("utf-8"))
