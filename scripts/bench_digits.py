"""How much laying out users' digits as MNIST's is worth: accuracy on tight crops, before and after.

Users' digits are drawn large on a canvas or cropped tight from a scan, dark on light. This
script writes such digits as PNG files and classifies them through `zoo predict`'s path twice:
padded to a square and resized (`--as-is`, what `zoo predict` did before) and laid out as
MNIST's digits are (the default). Two sets of digits:

- the UCI handwritten digits that scikit-learn ships (`sklearn.datasets.load_digits`: 1,797
  digits from 43 writers, none from MNIST, 8x8 pixels of 17 levels), each cropped to its ink
  and drawn 4 times larger;
- MNIST test digits, cropped to their ink and drawn 4 times larger.

Both are saved dark on white. Needs scikit-learn (the `bench` extra).

    python scripts/bench_digits.py --data-dir DATA [--models lenet.mnist ...] [--mnist 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

import zoo
from zoo.images import classify_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--data-dir", help="data root holding MNIST/raw")
    parser.add_argument("--models", nargs="+", default=["lenet.mnist", "mc_dropout_lenet.mnist"])
    parser.add_argument("--mnist", type=int, default=2000, help="MNIST test digits to use")
    arguments = parser.parse_args()
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("error: needs scikit-learn: pip install 'uncertainty-zoo[bench]'")

    uci = load_digits()
    sets = {
        "UCI digits (scikit-learn)": (
            torch.from_numpy(uci.images).float() / 16,
            torch.from_numpy(uci.target),
        ),
    }
    test = zoo.load_dataset("mnist", "test", arguments.data_dir)
    sets["MNIST test digits"] = (
        test.images[: arguments.mnist].float() / 255,
        test.targets[: arguments.mnist],
    )
    models = {name: zoo.load(name) for name in arguments.models}
    print(f"{'digits':<27} {'model':<24} {'as-is':>7} {'MNIST layout':>13}")
    for title, (inks, labels) in sets.items():
        with tempfile.TemporaryDirectory() as folder:
            paths = [_save_tight(ink, Path(folder) / f"{i}.png") for i, ink in enumerate(inks)]
            for name, model in models.items():
                before = _accuracy(classify_files(model, paths, as_is=True), labels)
                after = _accuracy(classify_files(model, paths), labels)
                print(f"{title:<27} {name:<24} {before:>7.1%} {after:>13.1%}")
        print(f"  ({len(labels):,} digits, cropped to their ink, 4x larger, dark on white)")


def _save_tight(ink: torch.Tensor, path: Path) -> str:
    """``ink`` (light on dark, [0, 1]) cropped to its ink, 4x larger, saved dark on white."""
    rows, columns = torch.nonzero(ink > 0, as_tuple=True)
    crop = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    larger = F.interpolate(crop[None, None], scale_factor=4, mode="bilinear")[0, 0]
    paper = ((1 - larger.clamp(0, 1)) * 255).round().to(torch.uint8)
    Image.fromarray(paper.numpy()).save(path)
    return str(path)


def _accuracy(entries: list[dict], labels: torch.Tensor) -> float:
    right = sum(
        entry.get("class") == int(label) for entry, label in zip(entries, labels, strict=True)
    )
    return right / len(labels)


if __name__ == "__main__":
    main()
