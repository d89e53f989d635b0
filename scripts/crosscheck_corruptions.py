"""Cross-check `zoo.corruptions` against MNIST-C's recipe run on the libraries MNIST-C calls.

MNIST-C corrupts one image at a time with NumPy, SciPy, scikit-image and ImageMagick. This
script does the same, image by image, following the recipe of each function of MNIST-C's
``corruptions.py`` at its default severity (rewritten here from that description), and
compares the result with what `zoo.corruptions` makes of the same test images:

- where nothing is random (scale, brightness, stripe, canny edges), pixel by pixel;
- where only a direction is drawn (shear, rotate, translate), each image against the
  reference shifted every way it could be, the closest taken; the motion blur's angle, drawn
  from any number from -45 to 45 degrees, is drawn as zoo draws it, so that it compares too;
- everywhere, through a model: its accuracy, NLL and ECE on both corrupted sets, since where
  noise is drawn (the rest) the two cannot agree pixel by pixel, only in what they do.

    pip install 'uncertainty-zoo[crosscheck]'  # Wand needs ImageMagick's MagickWand library
    python scripts/crosscheck_corruptions.py --data-dir DATA [--model lenet.mnist] [--images N]

The references round to uint8 as zoo does. Without Wand the motion blur is left out. Two
things are written out by hand because scikit-image has changed since MNIST-C: the affine
matrices (``AffineTransform(shear=...)`` means another matrix from 0.21 on), which follow the
scikit-image MNIST-C called, and the glass blur's Gaussian, which blurs down the columns only
as MNIST-C's ``multichannel=True`` on a 2-D image made it; those two agree with zoo by
construction, and the cross-check of them is of the warping and blurring, not of the reading.
"""

from __future__ import annotations

import argparse
import io
import itertools
import math
import sys

import numpy as np
import torch

import zoo
from zoo.corruptions import CHUNK, CORRUPTIONS, corrupt
from zoo.data import load_dataset
from zoo.devices import derived_seed, select_device
from zoo.shift import measure_steps

FIGURES = ("acc", "nll", "ece")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--data-dir", help="data root holding MNIST/raw")
    parser.add_argument("--model", default="lenet.mnist")
    parser.add_argument("--images", type=int, default=10_000, help="test images to corrupt")
    parser.add_argument("--samples", type=int, default=16)
    arguments = parser.parse_args()
    try:
        from scipy import ndimage
        from skimage import color, feature, filters, transform, util
    except ImportError:
        sys.exit("error: needs scipy and scikit-image: pip install 'uncertainty-zoo[crosscheck]'")
    libraries = {"ndimage": ndimage, "color": color, "feature": feature, "filters": filters}
    libraries |= {"transform": transform, "util": util, "wand": _wand()}

    test = load_dataset("mnist", "test", arguments.data_dir)
    test = zoo.ImageSet(
        test.name,
        test.split,
        test.images[: arguments.images],
        test.targets[: arguments.images],
        test.folder,
        {},
    )
    libraries["motion_angles"] = iter(_zoo_motion_angles(len(test)).tolist())
    references = reference_recipes(libraries)
    model = zoo.load(arguments.model)
    rng = np.random.default_rng(0)
    print(
        f"{arguments.model}, {len(test):,} MNIST test images, {arguments.samples} samples; "
        "pixels in 0-255"
    )
    print(
        f"{'corruption':<14} {'pixels: max':>11} {'mean':>6}   "
        + "   ".join(f"{key.upper()}: zoo  reference" for key in FIGURES)
    )
    for name in CORRUPTIONS:
        recipe = references.get(name)
        if recipe is None:
            print(f"{name:<14} skipped: Wand (ImageMagick) is not installed")
            continue
        ours = corrupt(test.images, name, seed=0)
        theirs = [recipe(image / 255.0, rng) for image in test.images.numpy().astype(np.float64)]
        difference = _pixel_difference(name, ours, theirs)
        # a direction drawn per image, where the reference gives one per direction
        picked = [images[rng.integers(len(images))] for images in theirs]
        reference = torch.from_numpy(np.stack([_to_uint8(image) for image in picked]))
        steps, _ = measure_steps(
            model,
            [("zoo", ours), ("reference", reference)],
            test,
            samples=arguments.samples,
            batch_size=1000,
            seed=0,
            device=select_device("cpu"),
        )
        pixels = f"{difference[0]:>11.0f} {difference[1]:>6.2f}" if difference else f"{'':>18}"
        figures = "   ".join(
            f"{_show(key, steps[0][key]):>{len(key) + 6}} {_show(key, steps[1][key]):>10}"
            for key in FIGURES
        )
        print(f"{name:<14} {pixels}   {figures}")


def reference_recipes(libraries: dict) -> dict:
    """For each corruption, a function of one float64 image in [0, 1] and a NumPy generator
    that returns the candidate images: one, or one for each direction it may take."""
    ndimage, color, feature = libraries["ndimage"], libraries["color"], libraries["feature"]
    filters, transform, util = libraries["filters"], libraries["transform"], libraries["util"]

    def warp(image, matrix, offset=(0.0, 0.0)):
        """Output (x, y) reads the input at matrix (p - c) + c + offset, c = (13.5, 13.5)."""
        matrix = np.asarray(matrix, dtype=np.float64)
        centre = np.array([13.5, 13.5])
        translation = centre - matrix @ centre + np.asarray(offset)
        affine = np.eye(3)
        affine[:2, :2], affine[:2, 2] = matrix, translation
        return transform.warp(image, transform.AffineTransform(matrix=affine), order=1)

    def shot_noise(image, rng):
        return [rng.poisson(image * 3) / 3]

    def impulse_noise(image, rng):
        return [util.random_noise(image, mode="s&p", amount=0.17, rng=rng)]

    def glass_blur(image, rng):
        def down_columns(values):  # MNIST-C's multichannel=True on a 2-D image
            return ndimage.gaussian_filter(values, sigma=(0.7, 0), mode="nearest")

        pixels = np.uint8(down_columns(image) * 255)
        for _ in range(2):
            for row in range(27, 1, -1):
                for column in range(27, 1, -1):
                    if rng.random() < 0.5:
                        d_column, d_row = rng.integers(-1, 1, size=2)
                        other = (row + d_row, column + d_column)
                        pixels[row, column], pixels[other] = pixels[other], pixels[row, column]
        return [down_columns(pixels / 255)]

    def motion_blur(image, rng):
        from PIL import Image as PillowImage

        buffer = io.BytesIO()
        PillowImage.fromarray(_to_uint8(image)).save(buffer, format="PNG")
        with libraries["wand"](blob=buffer.getvalue()) as picture:
            picture.motion_blur(radius=10, sigma=3, angle=next(libraries["motion_angles"]))
            blurred = PillowImage.open(io.BytesIO(picture.make_blob("png"))).convert("L")
        return [np.asarray(blurred, dtype=np.float64) / 255]

    def shear(image, rng):
        return [warp(image, [[1, -math.sin(s)], [0, math.cos(s)]]) for s in (0.4, -0.4)]

    def scale(image, rng):
        return [warp(image, np.eye(2) / 0.7)]

    def rotate(image, rng):
        turns = []
        for angle in (0.4, -0.4):
            cos, sin = math.cos(angle), math.sin(angle)
            turns.append(warp(image, [[cos, -sin], [sin, cos]]))
        return turns

    def translate(image, rng):
        moves = itertools.product((-3, 3), repeat=2)
        return [warp(image, np.eye(2), offset) for offset in moves]

    def brightness(image, rng):
        hsv = color.rgb2hsv(color.gray2rgb(image))
        hsv[..., 2] = np.clip(hsv[..., 2] + 0.5, 0, 1)
        return [color.rgb2gray(color.hsv2rgb(hsv))]

    def stripe(image, rng):
        striped = image.copy()
        striped[:, :7], striped[:, 21:] = 1 - image[:, :7], 1 - image[:, 21:]
        return [striped]

    def fog(image, rng):
        layer = _plasma(rng, decay=1.4)[:28, :28]
        brightest = image.max()
        return [(image + 3 * layer) * brightest / (brightest + 3)]

    def spatter(image, rng):
        liquid = filters.gaussian(rng.normal(0.65, 0.3, size=image.shape), sigma=1)
        drops = filters.gaussian((liquid > 0.65).astype(np.float64), sigma=1.5)
        drops[drops < 0.8] = 0
        return [image * (1 - drops) + 63 / 255 * drops]

    def dotted_line(image, rng):
        start, end = rng.integers(0, 27, size=2)
        line = _line(0, start, 27, end)
        for first in range(0, 28, 4):
            line[:, first : first + 2] = 0
        return [image + line]

    def zigzag(image, rng):
        start = rng.integers(0, 27)
        rise = rng.integers(-5, 5)
        heading = math.atan(rise / 23)
        length = 23 / math.cos(heading)
        corners = [(0.0, 0.0)]
        swings = int((length - 2) // 4) + 1
        for index in range(swings):
            corners.append(((2 * index + 1) * 2.0, (-1) ** index * 2.0))
        turns = 4 * (length // 4)
        if length != turns:
            corners.append((length, corners[-1][1] / (2 * (length - turns))))
        cos, sin = math.cos(heading), math.sin(heading)
        points = [(2 + a * cos - b * sin, start + a * sin + b * cos) for a, b in corners]
        drawn = image.copy()
        for (c0, r0), (c1, r1) in itertools.pairwise(points):
            drawn = np.clip(drawn + _line(c0, r0, c1, r1), 0, 1)
        return [drawn]

    def canny_edges(image, rng):
        return [feature.canny(image).astype(np.float64)]

    recipes = {
        "shot_noise": shot_noise,
        "impulse_noise": impulse_noise,
        "glass_blur": glass_blur,
        "motion_blur": motion_blur if libraries["wand"] else None,
        "shear": shear,
        "scale": scale,
        "rotate": rotate,
        "brightness": brightness,
        "translate": translate,
        "stripe": stripe,
        "fog": fog,
        "spatter": spatter,
        "dotted_line": dotted_line,
        "zigzag": zigzag,
        "canny_edges": canny_edges,
    }
    return {name: recipe for name, recipe in recipes.items() if recipe is not None}


# Where the reference's direction is drawn, or nothing is: compared pixel by pixel.
COMPARABLE = {"motion_blur", "shear", "scale", "rotate", "translate", "brightness", "stripe"}
COMPARABLE |= {"canny_edges"}


def _pixel_difference(name: str, ours: torch.Tensor, theirs: list) -> tuple[float, float] | None:
    """The largest and the mean absolute pixel difference, each image against the closest of
    its candidates; None where noise is drawn."""
    if name not in COMPARABLE:
        return None
    largest, total = 0.0, 0.0
    for image, candidates in zip(ours.numpy().astype(np.int64), theirs, strict=True):
        gaps = [np.abs(_to_uint8(candidate).astype(np.int64) - image) for candidate in candidates]
        closest = min(gaps, key=lambda gap: gap.sum())
        largest, total = max(largest, float(closest.max())), total + float(closest.mean())
    return largest, total / len(theirs)


def _line(c0: float, r0: float, c1: float, r1: float) -> np.ndarray:
    """MNIST-C's line: 1 + log(1 - d / 2.3) at a vertical distance d, between the columns."""
    if c1 == c0:
        return np.zeros((28, 28))
    columns, rows = np.meshgrid(np.arange(28.0), np.arange(28.0))
    line_rows = (r1 - r0) / (c1 - c0) * (columns - c0) + r0
    distance = np.clip(np.abs(rows - line_rows), 0, 2.3 - 1e-10)
    line = np.clip(np.log(1 - distance / 2.3) + 1, 0, 1)
    line[:, : math.floor(c0)] = 0
    line[:, math.ceil(c1) :] = 0
    return line


def _plasma(rng: np.random.Generator, decay: float, size: int = 256) -> np.ndarray:
    """A diamond-square height map that wraps around, scaled to [0, 1]."""
    heights = np.zeros((size, size))
    step, wibble = size, 100.0
    while step >= 2:
        half = step // 2
        corners = heights[::step, ::step]
        total = corners + np.roll(corners, -1, axis=0)
        total = total + np.roll(total, -1, axis=1)
        heights[half::step, half::step] = total / 4 + wibble * rng.uniform(
            -wibble, wibble, total.shape
        )
        centres, corners = heights[half::step, half::step], heights[::step, ::step]
        across = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        heights[::step, half::step] = across / 4 + wibble * rng.uniform(
            -wibble, wibble, across.shape
        )
        down = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        heights[half::step, ::step] = down / 4 + wibble * rng.uniform(-wibble, wibble, down.shape)
        step, wibble = half, wibble / decay
    heights -= heights.min()
    return heights / heights.max()


def _zoo_motion_angles(count: int) -> torch.Tensor:
    """The angles, in degrees, that `zoo.corruptions.motion_blur` draws first for ``count``
    images with seed 0 on the CPU, chunk by chunk as `zoo.corruptions.corrupt` draws them."""
    angles = []
    for index, start in enumerate(range(0, count, CHUNK)):
        label = f"uncertainty-zoo corruption motion_blur of seed 0, chunk {index}"
        generator = torch.Generator().manual_seed(derived_seed(label))
        size = min(CHUNK, count - start)
        angles.append(torch.rand((size,), generator=generator) * 90 - 45)
    return torch.cat(angles)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _show(key: str, value: float) -> str:
    return f"{value:.2%}" if key != "nll" else f"{value:.4f}"


def _wand():
    try:
        from wand.image import Image
    except ImportError:
        return None
    return Image


if __name__ == "__main__":
    main()
