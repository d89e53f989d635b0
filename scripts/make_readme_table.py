"""Write the tables of official checkpoints into README.md and recipes/README.md, from the registry.

    python scripts/make_readme_table.py           # rewrite the tables
    python scripts/make_readme_table.py --check   # exit 1 if a table is not the generated one

Both documents hold the table of checkpoints between the lines `<!-- checkpoints: begin -->`
and `<!-- checkpoints: end -->`; README.md also holds their figures under dataset shift between
`<!-- shift: begin -->` and `<!-- shift: end -->`. Every figure comes from
zoo/checkpoints/index.json, which scripts/add_checkpoint.py writes from a real `zoo eval` and
training run; the test suite fails while a committed table differs from the generated one.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from zoo.atomic import atomic_write_bytes
from zoo.options import SHIFT_KINDS
from zoo.report import flat_metrics, format_metric
from zoo.weights import PretrainedWeights, all_weights

REPOSITORY = Path(__file__).resolve().parent.parent
DOCUMENTS = (REPOSITORY / "README.md", REPOSITORY / "recipes" / "README.md")
README, RECIPES_README = DOCUMENTS
COLUMNS = ("acc", "nll", "ece", "auroc", "fpr95")


def checkpoint_table() -> str:
    """Every official checkpoint side by side, as a Markdown table."""
    lines = [
        "| name | Acc | NLL | ECE | OOD AUROC | FPR95 | params | `zoo eval` (CPU) "
        "| training (CPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in all_weights().items():
        metrics = flat_metrics(entry.metrics)
        figures = [format_metric(key, metrics[key]) for key in COLUMNS]
        seconds = entry.evaluation["wall_time_s"]
        lines.append(
            f"| `{name}` | {' | '.join(figures)} | {entry.num_params:,} | {seconds:.1f} s | "
            f"{_training(entry)} |"
        )
    return "\n".join(lines)


def _training(entry: PretrainedWeights) -> str:
    training = entry.training
    calibration = training.get("calibration")
    if calibration:
        return f"`{calibration['of']}`'s, then T = {calibration['temperature']:.3f}"
    text = f"{training['epochs']} epochs, {training['seconds'] / 60:.1f} min"
    if "laplace" in training:
        text += ", then the posterior"
    return text


def shift_table() -> str:
    """Every official checkpoint's mean figures over the shifted steps of each shift."""
    lines = [
        "| name | rotation: Acc | NLL | ECE | translation: Acc | NLL | ECE "
        "| corruptions: Acc | NLL | ECE |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in all_weights().items():
        figures = [
            format_metric(key, entry.shift[kind]["summary"][key])
            for kind in SHIFT_KINDS
            for key in ("acc", "nll", "ece")
        ]
        lines.append(f"| `{name}` | {' | '.join(figures)} |")
    return "\n".join(lines)


def with_table(text: str, table: str, block: str = "checkpoints") -> str:
    """``text`` with the table between the markers of ``block`` replaced by ``table``."""
    begin, end = f"<!-- {block}: begin -->", f"<!-- {block}: end -->"
    pattern = re.compile(rf"{re.escape(begin)}\n(.*?\n)?{re.escape(end)}", flags=re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"the document needs one {begin} ... {end} block")
    return pattern.sub(lambda _: f"{begin}\n{table}\n{end}", text)


def generated(document: Path, text: str) -> str:
    """``document``'s ``text`` with every table it holds generated afresh."""
    text = with_table(text, checkpoint_table())
    if document == README:
        text = with_table(text, shift_table(), "shift")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the tables")
    arguments = parser.parse_args()
    stale = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        updated = generated(document, text)
        if updated == text:
            continue
        stale.append(document.relative_to(REPOSITORY))
        if not arguments.check:
            atomic_write_bytes(document, updated.encode("utf-8"))
    if arguments.check and stale:
        sys.exit(f"not the generated tables: {', '.join(map(str, stale))}")
    for document in stale:
        print(f"wrote the tables in {document}")


if __name__ == "__main__":
    main()
