"""The ``zoo`` command line. It parses arguments and delegates to the library.

Commands import what they need inside their bodies, so ``zoo --help`` never loads torch.
Errors that the library raises on purpose (`zoo.ZooError`) are shown as one line and exit
with code 2, as Click's own usage errors do.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from zoo._version import __version__
from zoo.atomic import check_writable
from zoo.errors import TrainingProcessError, ZooError, ZooWarning
from zoo.limits import MAX_SAMPLES
from zoo.options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SAMPLES,
    DEVICE_NAMES,
    LAUNCHED_BY_NPROC_VARIABLE,
    OOD_DATASETS,
    OOD_SCORES,
    SEED_RANGE,
    SHIFT_KINDS,
)
from zoo.text import escaped

samples_option = click.option(
    "--samples",
    type=click.IntRange(1, MAX_SAMPLES),
    default=DEFAULT_SAMPLES,
    show_default=True,
    help="Stochastic forward samples per image.",
)
seed_option = click.option(
    "--seed",
    type=click.IntRange(*SEED_RANGE),
    default=0,
    show_default=True,
    help="Seeds the samples drawn, so that a rerun gives the same numbers.",
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data root holding MNIST/raw and FashionMNIST/raw (downloaded there when missing). "
    "[default: $ZOO_DATA_DIR, else ~/.cache/zoo/data]",
)
device_option = click.option(
    "--device",
    type=click.Choice(DEVICE_NAMES),
    default="auto",
    show_default=True,
    help="auto picks $ZOO_DEVICE when it is set, else cuda, then mps, then cpu.",
)
MODEL_HELP = (
    "MODEL is a registered name (see `zoo list`), a folder written by save_pretrained or zoo "
    "train, or a Hugging Face Hub repository, org/name or org/name@revision."
)


class CommandError(click.ClickException):
    """A `ZooError`, reported as "Error: <message>" with exit code 2."""

    exit_code = 2


@contextlib.contextmanager
def zoo_errors() -> Iterator[None]:
    """Turn the library's deliberate errors into `CommandError`s, without a traceback."""
    try:
        yield
    except ZooError as error:  # one line, whatever a file holds
        raise CommandError(escaped(_with_rank(str(error)))) from None


def _with_rank(message: str) -> str:
    """``message`` with the rank of the process that says it, under torchrun: each process
    of a run says its own."""
    rank, size = os.environ.get("RANK", ""), os.environ.get("WORLD_SIZE", "")
    together = size.isascii() and size.isdigit() and size.lstrip("0") not in ("", "1")
    return f"rank {rank}: {message}" if together and rank.isascii() and rank.isdigit() else message


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="uncertainty-zoo")
def main() -> None:
    """uncertainty-zoo: pretrained, uncertainty-aware PyTorch classifiers."""
    show_other_warnings = warnings.showwarning

    def show_warning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, ZooWarning):  # one line, as errors are
            click.echo(f"Warning: {escaped(str(message))}", err=True)
        else:
            show_other_warnings(message, category, filename, lineno, file, line)

    warnings.showwarning = show_warning


@main.command("list")
@click.argument("pattern", default="*")
def list_command(pattern: str) -> None:
    """List the pretrained models, and architectures without weights, that match PATTERN.

    PATTERN may use wildcards (* ? [...]) and matches a checkpoint's name or its architecture.
    """
    from zoo.info import format_model_table, matching_names, model_info

    names = matching_names(pattern)
    if not names:
        known = ", ".join(matching_names("*"))
        raise click.ClickException(f"no model matches {pattern!r}; known models: {known}")
    click.echo(format_model_table([model_info(name) for name in names]))


@main.command("info", epilog=MODEL_HELP)
@click.argument("model")
def info_command(model: str) -> None:
    """Show everything known about MODEL: architecture, arguments, weights, metrics."""
    from zoo.info import format_model_info, model_info

    with zoo_errors():
        click.echo(format_model_info(model_info(model)))


ood_option = click.option(
    "--ood",
    type=click.Choice([*OOD_DATASETS, "none"]),
    default=OOD_DATASETS[0],
    show_default=True,
    help="Out-of-distribution test set, or none.",
)
ood_score_option = click.option(
    "--ood-score",
    type=click.Choice(OOD_SCORES),
    default=OOD_SCORES[0],
    show_default=True,
    help="OOD score: predictive entropy, 1 - max probability (msp), or mutual information.",
)
batch_size_option = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Images per forward pass.",
)
json_option = click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write every figure and the provenance to this JSON file.",
)
shift_option = click.option(
    "--shift",
    type=click.Choice(SHIFT_KINDS),
    help="Measure on the MNIST test set shifted step by step instead: rotated by 0-180 "
    "degrees or translated by 0-26 pixels (Ovadia et al., 2019), or with each of the 15 "
    "MNIST-C corruptions (Mu and Gilmer, 2019); a row per step.",
)


@main.command("eval", epilog=MODEL_HELP)
@click.argument("model")
@data_dir_option
@samples_option
@ood_option
@ood_score_option
@batch_size_option
@device_option
@seed_option
@json_option
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a PNG: reliability diagram, risk-coverage curve, OOD score "
    "histograms; with --shift, the figures against the shift (needs the plot extra).",
)
@shift_option
def eval_command(
    model: str,
    data_dir: Path | None,
    samples: int,
    ood: str,
    ood_score: str,
    batch_size: int,
    device: str,
    seed: int,
    json_path: Path | None,
    plot_path: Path | None,
    shift: str | None,
) -> None:
    """Measure MODEL's accuracy, calibration, selective classification and OOD detection.

    Evaluates on the MNIST test set (10,000 images) and, for OOD detection, the FashionMNIST
    test set. The same seed gives the same numbers.
    """
    from zoo import evaluate
    from zoo.plot import plot_report, plot_shift, require_matplotlib

    with zoo_errors():
        if plot_path:
            require_matplotlib()  # fail before the evaluation, not after it
        _check_destinations(json_path, plot_path)
        report = evaluate(
            model,
            ood=None if ood == "none" else ood,
            samples=samples,
            batch_size=batch_size,
            device=device,
            seed=seed,
            ood_score=ood_score,
            data_dir=data_dir,
            progress=True,
            shift=shift,
        )

        def plot(path: Path) -> None:
            if shift:
                plot_shift([report], path)
            else:
                plot_report(report, path)

        _show_and_write(report, json_path, plot_path, plot)


@main.command("compare", epilog=MODEL_HELP)
@click.argument("models", nargs=-1, required=True)
@data_dir_option
@samples_option
@ood_option
@ood_score_option
@batch_size_option
@device_option
@seed_option
@json_option
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a PNG with a line per model: reliability and risk-coverage; with "
    "--shift, the figures against the shift (needs the plot extra).",
)
@shift_option
def compare_command(
    models: tuple[str, ...],
    data_dir: Path | None,
    samples: int,
    ood: str,
    ood_score: str,
    batch_size: int,
    device: str,
    seed: int,
    json_path: Path | None,
    plot_path: Path | None,
    shift: str | None,
) -> None:
    """Measure two or more MODELS on the same data: a table with a column per model.

    Each model's figures are those `zoo eval` gives it with the same options: the data is
    read once, and with --shift the shifted sets are built once, for all of them.
    """
    from zoo import compare
    from zoo.plot import plot_comparison, plot_shift, require_matplotlib

    with zoo_errors():
        if plot_path:
            require_matplotlib()
        _check_destinations(json_path, plot_path)
        comparison = compare(
            list(models),
            shift=shift,
            ood=None if ood == "none" else ood,
            samples=samples,
            batch_size=batch_size,
            device=device,
            seed=seed,
            ood_score=ood_score,
            data_dir=data_dir,
            progress=True,
        )
        plotter = plot_shift if shift else plot_comparison
        _show_and_write(
            comparison, json_path, plot_path, lambda path: plotter(comparison.reports, path)
        )


@main.command("calibrate", epilog=MODEL_HELP)
@click.argument("model")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to save the calibrated model in (a save_pretrained folder).",
)
@samples_option
@seed_option
@device_option
@data_dir_option
def calibrate_command(
    model: str, out: Path, samples: int, seed: int, device: str, data_dir: Path | None
) -> None:
    """Fit MODEL's temperature on held-out images and save the calibrated model in --out.

    Temperature scaling (Guo et al., 2017) divides the logits by one number T, chosen to
    minimise the NLL on the last 5,000 MNIST training images, which the recipes hold out; never
    on the test set. Each sample's class stays the same and confidences move (a stochastic
    model's averaged prediction can change class slightly). A model that has a temperature
    already is fitted afresh from its raw logits.
    """
    from zoo.loading import load
    from zoo.temperature import fit_temperature

    with zoo_errors():
        loaded = load(model)
        fit = fit_temperature(loaded, samples=samples, seed=seed, device=device, data_dir=data_dir)
        loaded.temperature = fit.temperature
        folder = loaded.save_pretrained(out)
    each = "1 sample" if fit.samples == 1 else f"{fit.samples} samples"
    click.echo(
        f"temperature {fit.temperature:.4f}: held-out NLL {fit.nll_before:.4f} -> "
        f"{fit.nll_after:.4f} ({fit.images:,} images, {each} each)"
    )
    click.echo(f"wrote {folder}")


@main.command("ensemble", epilog=MODEL_HELP)
@click.argument("members", nargs=-1, required=True)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to save the ensemble in (a save_pretrained folder).",
)
def ensemble_command(members: tuple[str, ...], out: Path) -> None:
    """Build a deep ensemble from trained LeNets (MEMBERS: names, folders or Hub ids) and save
    it in --out; it then loads, evaluates and pushes like any model.

    The members must be deterministic LeNets that agree in classes, labels and normalisation,
    each trained on its own (Lakshminarayanan et al., 2017).
    """
    from zoo.loading import ensemble

    with zoo_errors():
        model = ensemble(list(members))
        folder = model.save_pretrained(out)
    click.echo(f"wrote {folder}: a deep ensemble of {model.members} LeNets")


@main.command("predict", epilog=MODEL_HELP)
@click.argument("model")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@samples_option
@click.option(
    "--invert/--no-invert",
    default=None,
    help="Say whether to invert the images (for dark ink on light paper) instead of deciding "
    "from each image's border.",
)
@click.option(
    "--as-is",
    is_flag=True,
    help="Only pad each image to a square and resize it to 28x28, instead of laying it out "
    "as MNIST's digits are.",
)
@seed_option
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def predict_command(
    model: str,
    images: tuple[Path, ...],
    samples: int,
    invert: bool | None,
    as_is: bool,
    seed: int,
    as_json: bool,
) -> None:
    """Classify digit IMAGES with MODEL and show how uncertain each prediction is.

    Each IMAGE is a PNG, JPEG, GIF, BMP, TIFF, WebP or PPM/PGM of any size or colour. It is
    laid out as MNIST's digits are: grayscale, light ink on dark (an image with a light border
    is taken for ink on paper and inverted), cropped to the ink, fitted to 20x20 pixels and
    centred by its centre of mass in 28x28. A 28x28 image laid out so already keeps its
    pixels. Each image's samples are drawn from a seed derived from --seed and its pixels.
    """
    from zoo.images import classify_files
    from zoo.loading import load

    with zoo_errors():
        entries = classify_files(
            load(model), images, samples, invert=invert, seed=seed, as_is=as_is
        )
    if as_json:
        click.echo(json.dumps(entries, indent=2, allow_nan=False))
    for entry in entries:
        if "error" in entry:
            click.echo(f"Error: {escaped(entry['error'])}", err=True)
        elif not as_json:
            click.echo(_describe(entry))
    if any("error" in entry for entry in entries):
        raise SystemExit(1)


@main.command("serve", epilog=MODEL_HELP)
@click.argument("models", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port."
)
@samples_option
@seed_option
@data_dir_option
def serve_command(
    models: tuple[str, ...], host: str, port: int, samples: int, seed: int, data_dir: Path | None
) -> None:
    """Start a local web page to draw digits on, with a JSON API, serving MODELS.

    After each stroke the page shows the predicted digit, the probability of each class, the
    samples' votes, the entropy split into aleatoric and mutual information, whether the
    drawing looks unfamiliar to the model, and the 28x28 image it saw. Without MODELS it
    serves the default weights of every architecture. Ctrl-C stops it. Needs the serve extra:
    pip install 'uncertainty-zoo[serve]'.
    """
    from zoo.server import listen, load_models, require_server, serve
    from zoo.weights import all_weights

    with zoo_errors():
        require_server()
        listening = listen(host, port)  # a port in use fails before any model loads
        names = list(models) or [name for name, entry in all_weights().items() if entry.default]
        try:
            served = load_models(names, data_dir)
        except BaseException:
            listening.close()
            raise
        listed = ", ".join(model.name for model in served)

        def announce(url: str) -> None:
            click.echo(f"serving {listed} at {url} (Ctrl-C stops)", err=True)

        with contextlib.suppress(KeyboardInterrupt):  # uvicorn stops, then raises Ctrl-C again
            serve(served, listening, samples=samples, seed=seed, announce=announce)
        click.echo("stopped", err=True)


@main.command("train")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the trained model, its log, recipe and evaluation.  [default: runs/NAME, "
    "NAME being the recipe's name]",
)
@device_option
@click.option("--epochs", type=click.IntRange(min=1), help="Override the recipe's epochs.")
@click.option("--seed", type=click.IntRange(*SEED_RANGE), help="Override the recipe's seed.")
@click.option("--resume", is_flag=True, help="Go on with the killed run in --out.")
@click.option(
    "--allow-recipe-changes",
    is_flag=True,
    help="With --resume: go on under RECIPE even where its optimizer, schedule or training "
    "settings differ from the run's (not its model, data or seed).",
)
@data_dir_option
@click.option(
    "--nproc",
    type=click.IntRange(min=1, max=1024),
    default=1,
    show_default=True,
    help="Train on this many processes of this machine, started by torchrun (one GPU each on "
    "CUDA; on the CPU, no more than its cores): each takes its share "
    "of every batch, or of a deep ensemble's members, as the recipe's training.distribute "
    "says. For several machines, run torchrun yourself: torchrun --nnodes ... -m zoo train "
    "RECIPE.",
)
def train_command(
    recipe: Path,
    out: Path | None,
    device: str,
    epochs: int | None,
    seed: int | None,
    resume: bool,
    allow_recipe_changes: bool,
    data_dir: Path | None,
    nproc: int,
) -> None:
    """Train a model from a RECIPE file (TOML; see recipes/ for the official ones).

    Writes a save_pretrained folder, with train_log.jsonl, recipe.toml (the recipe as run) and
    eval.json (the final evaluation on the MNIST test set) beside it. A checkpoint is saved
    after every epoch: after a crash or Ctrl-C, run the same command with --resume.
    """
    # What Ctrl-C left is said once: by the launcher of --nproc, else by rank 0.
    says_interrupted = (
        LAUNCHED_BY_NPROC_VARIABLE not in os.environ and os.environ.get("RANK", "0") == "0"
    )
    folder = None
    try:  # from the imports on, which take seconds
        from zoo.devices import select_device
        from zoo.training import check_distributable, read_recipe, train
        from zoo.training.distributed import check_processes, launch, world_from_environment

        with zoo_errors():
            if allow_recipe_changes and not resume:
                raise CommandError("--allow-recipe-changes applies to --resume only")
            world = world_from_environment()
            resolved = read_recipe(recipe).replace(epochs=epochs, seed=seed)
            folder = out or Path("runs") / resolved.name
            if nproc > 1:
                if world.distributed:
                    raise CommandError(
                        "--nproc starts torchrun itself; under torchrun, leave it out"
                    )
                check_distributable(resolved, nproc)
                check_processes(nproc, select_device(device))
                try:  # rank 0 says what it writes
                    launch(nproc, ["train", *_given_again(click.get_current_context(), "nproc")])
                except TrainingProcessError as error:
                    _stopped(error, folder)
                return
            if world.writes:
                click.echo(f"training {resolved.name} into {folder}", err=True)
            train(
                resolved,
                folder,
                device=device,
                resume=resume,
                allow_recipe_changes=allow_recipe_changes,
                data_dir=data_dir,
                progress=True,
            )
    except KeyboardInterrupt:
        if says_interrupted:
            click.echo(f"\n{_interrupted(folder) if folder else 'interrupted'}", err=True)
        raise SystemExit(130) from None
    if world.writes:
        click.echo(f"wrote {folder}")


def _stopped(error: TrainingProcessError, folder: Path) -> NoReturn:
    """Say why the processes of ``zoo train --nproc`` stopped, and what a stop by a signal
    kept; exit 2, or 128 + the signal that stopped the launcher itself."""
    if error.signal_number is None:  # a process failed, and has said why
        raise CommandError(str(error))
    click.echo(f"Error: {escaped(str(error))}; {_what_is_kept(folder)}", err=True)
    raise SystemExit(128 + error.signal_number if error.launcher_stopped else 2)


def _given_again(context: click.Context, leaving_out: str) -> list[str]:
    """The command line that gives this command the options it was given (but
    ``leaving_out``) and its arguments again: what ``zoo train --nproc`` hands on to each
    process torchrun starts."""
    options, arguments = [], []
    for parameter in context.command.params:
        name, value = parameter.name, context.params.get(parameter.name or "")
        if name == leaving_out or name is None:
            continue
        if isinstance(parameter, click.Argument):
            arguments.append(str(value))
        elif context.get_parameter_source(name) is not ParameterSource.DEFAULT:
            assert isinstance(parameter, click.Option)
            if parameter.is_flag:
                options += parameter.opts[:1] if value else parameter.secondary_opts[:1]
            else:
                options += [parameter.opts[0], str(value)]
    return [*options, "--", *arguments]  # an argument that starts with "-" stays one


@main.command("push")
@click.argument("model")
@click.option(
    "--repo-id", required=True, help="The Hub repository, org/name; created when missing."
)
@click.option("--revision", help="Branch to commit to, created when missing.  [default: main]")
@click.option("--private", is_flag=True, help="Make the repository private when creating it.")
@click.option(
    "--token",
    help="Hub token with write access; prefer $HF_TOKEN, as a token here shows in the process "
    "list and the shell history.  [default: $HF_TOKEN, else the `hf auth login` token]",
)
@click.option("--message", help="Commit message.")
def push_command(
    model: str,
    repo_id: str,
    revision: str | None,
    private: bool,
    token: str | None,
    message: str | None,
) -> None:
    """Publish MODEL to the Hugging Face Hub in one commit.

    MODEL is a registered name or a folder written by save_pretrained or zoo train. The
    repository gets model.safetensors, config.json, a model card as README.md (with the
    evaluation results as model-index metadata) and, where they exist, the recipe, the
    evaluation report and the training log. Prints the new commit and its URL; load it back
    with `zoo.from_pretrained("org/name")`.
    """
    from zoo.publishing import push_to_hub

    with zoo_errors():
        result = push_to_hub(
            model,
            repo_id,
            revision=revision,
            private=private or None,
            token=token,
            commit_message=message,
        )
    click.echo(escaped(str(result), keep="\n"))  # the commit and its URL come from the Hub


def _show_and_write(
    result: Any, json_path: Path | None, plot_path: Path | None, plot: Callable[[Path], None]
) -> None:
    """Print ``result``'s tables, then write its JSON and its plot where asked."""
    click.echo(result.format(), nl=False)
    if json_path:
        result.save_json(json_path)
        click.echo(f"wrote {json_path}", err=True)
    if plot_path:
        plot(plot_path)
        click.echo(f"wrote {plot_path}", err=True)


def _describe(result: dict) -> str:
    """Three lines: the prediction with its uncertainty, each sample's vote, and how the
    image was prepared."""
    confidence, entropy = 100 * result["confidence"], result["entropy"]
    information, votes = result["mutual_information"], result["votes"]
    prepared = result["prepared"]
    polarity = "inverted" if prepared["inverted"] else "not inverted"
    how = "from its border" if prepared["polarity"] == "detected" else "as asked"
    layout = _LAYOUTS[prepared["layout"]]
    return (
        f"{escaped(result['image'])}: {escaped(result['label'])}  (confidence "
        f"{confidence:.1f}%, entropy {entropy:.3f}, mutual information {information:.3f} nats)\n"
        f"  votes of the {len(votes)} samples: {escaped(' '.join(votes))}\n"
        f"  prepared: {polarity} ({how}), {layout}"
    )


_LAYOUTS = {
    "mnist": "laid out as MNIST's digits are",
    "kept": "already laid out as MNIST's digits are: pixels kept",
    "as-is": "padded to a square and resized (--as-is)",
}


def _interrupted(folder: Path) -> str:
    """What Ctrl-C left in ``folder`` and how to go on."""
    return f"interrupted: {_what_is_kept(folder)}"


def _what_is_kept(folder: Path) -> str:
    """What a stopped run left in ``folder`` and how to go on."""
    from zoo.training.checkpoint import CHECKPOINT_NAME, checkpoint_epoch

    epoch = checkpoint_epoch(folder / CHECKPOINT_NAME)
    if epoch is None:
        return "no epoch had ended, so there is nothing to resume; run it again"
    return (
        f"the checkpoint after epoch {epoch} is kept in {folder}; run the same command with "
        "--resume to go on from it"
    )


def _check_destinations(*paths: Path | None) -> None:
    """Fail before a long evaluation if an output file could not be written."""
    given = [path for path in paths if path is not None]
    for path in given:
        check_writable(path)  # a symlink is refused here, so resolving cannot loop
    if len({path.resolve() for path in given}) < len(given):
        raise CommandError("--json and --plot must name different files")


if __name__ == "__main__":
    main()
