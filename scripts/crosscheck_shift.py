"""Cross-check `zoo eval --shift` against an independent implementation of the protocol.

Ovadia et al.'s code shifts MNIST with numpy and scipy: ``scipy.ndimage.rotate(image, angle,
reshape=False)`` (a cubic spline, zeros outside) and ``np.roll`` along the width. This script
builds both grids that way, from the same test images, measures one model on them through the
same metrics as zoo does, and prints, per step, zoo's figure and the scipy/numpy one for
accuracy, NLL and ECE, with the largest difference per step. The images from scipy are
rounded to uint8 as zoo's are. Needs scipy (not a dependency of the zoo).

    python scripts/crosscheck_shift.py --data-dir DATA [--model lenet.mnist] [--samples 16]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

import zoo
from zoo.data import load_dataset
from zoo.devices import select_device
from zoo.shift import ROTATION_DEGREES, TRANSLATION_PIXELS, measure_steps, rotate

FIGURES = ("acc", "nll", "ece")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--data-dir", help="data root holding MNIST/raw")
    parser.add_argument("--model", default="lenet.mnist")
    parser.add_argument("--samples", type=int, default=16)
    arguments = parser.parse_args()
    try:
        from scipy import ndimage
    except ImportError:
        sys.exit("error: scipy is not installed: pip install 'uncertainty-zoo[crosscheck]'")

    model = zoo.load(arguments.model)
    test = load_dataset("mnist", "test", arguments.data_dir)
    pixels = test.images.numpy()
    sign = _scipy_sign(ndimage)

    def scipy_rotate(degrees: int) -> torch.Tensor:
        if degrees == 0:
            return test.images
        turned = ndimage.rotate(
            pixels.astype(np.float64), sign * degrees, axes=(1, 2), reshape=False
        )
        return torch.from_numpy(np.clip(np.round(turned), 0, 255).astype(np.uint8))

    def numpy_roll(shift: int) -> torch.Tensor:
        return torch.from_numpy(np.roll(pixels, shift, axis=2))

    grids = {
        "rotation": (ROTATION_DEGREES, scipy_rotate),
        "translation": (TRANSLATION_PIXELS, numpy_roll),
    }
    device = select_device("cpu")
    print(f"{arguments.model}, {arguments.samples} samples, seed 0; zoo / independent")
    for kind, (grid, transform) in grids.items():
        ours = zoo.evaluate(
            model, samples=arguments.samples, data_dir=arguments.data_dir, shift=kind
        ).steps
        theirs, _ = measure_steps(
            model,
            [(value, transform(value)) for value in grid],
            test,
            samples=arguments.samples,
            batch_size=1000,
            seed=0,
            device=device,
        )
        print(f"\n{kind}")
        print(
            f"{'step':>5}  " + "  ".join(f"{key:>17}" for key in FIGURES) + "  largest difference"
        )
        for mine, other in zip(ours, theirs, strict=True):
            cells = "  ".join(f"{mine[key]:8.4f}/{other[key]:8.4f}" for key in FIGURES)
            largest = max(abs(mine[key] - other[key]) for key in FIGURES)
            print(f"{mine['step']:>5}  {cells}  {largest:.4f}")


def _scipy_sign(ndimage) -> int:
    """The sign that makes scipy's rotation turn the way zoo's does (counter-clockwise as
    displayed), found on an asymmetric image by a quarter turn."""
    image = np.zeros((1, 28, 28), dtype=np.float64)
    image[0, 4:10, 6:20] = 200.0
    ours = rotate(torch.from_numpy(image.astype(np.uint8)), 90).numpy()
    for sign in (1, -1):
        theirs = ndimage.rotate(image, sign * 90, axes=(1, 2), reshape=False, order=1)
        if np.abs(np.round(theirs) - ours)[:, 1:-1, 1:-1].max() <= 1:
            return sign
    raise SystemExit("error: scipy's quarter turn matches zoo's in neither direction")


if __name__ == "__main__":
    main()
