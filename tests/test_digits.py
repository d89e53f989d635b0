"""Laying out users' digits as MNIST's: from tight crops, corners, thick or thin pens, dark
paper, files and arrays alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

import zoo
from zoo.cli import main
from zoo.digits import prepare_digit
from zoo.errors import BlankImageError
from zoo.images import classify_digits, classify_files


@pytest.fixture(scope="module")
def mnist_digits(data_root: Path) -> torch.Tensor:
    return zoo.load_dataset("mnist", "test", data_root).images[:40]


def strokes(digit: torch.Tensor, scale: int) -> torch.Tensor:
    """The ink of an MNIST digit cropped tight and drawn ``scale`` times larger, in [0, 1]."""
    rows, columns = torch.nonzero(digit > 0, as_tuple=True)
    crop = digit[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1].float() / 255
    return F.interpolate(crop[None, None], scale_factor=scale, mode="bilinear")[0, 0]


def on_paper(ink: torch.Tensor, paper: float = 1.0, pen: float = 0.0) -> torch.Tensor:
    """``ink`` drawn with a ``pen`` of one level on ``paper`` of another, as uint8."""
    return ((paper + (pen - paper) * ink) * 255).round().clamp(0, 255).to(torch.uint8)


def distance(first: torch.Tensor, second: torch.Tensor) -> float:
    """Mean absolute pixel difference, in levels of 255."""
    return float((first.float() - second.float()).abs().mean())


def layout_of(pixels: torch.Tensor) -> tuple[int, float, float]:
    """The longer side of the ink's box and its centre of mass, row and column."""
    ink = pixels.float()
    rows, columns = torch.nonzero(ink > 0, as_tuple=True)
    longer = max(int(rows.max() - rows.min()), int(columns.max() - columns.min())) + 1
    index = torch.arange(28, dtype=torch.float32)
    total = ink.sum()
    return (
        longer,
        float((ink.sum(1) * index).sum() / total),
        float((ink.sum(0) * index).sum() / total),
    )


def test_mnist_digits_keep_their_pixels(mnist_digits: torch.Tensor) -> None:
    for digit in mnist_digits:
        prepared = prepare_digit(digit)
        assert prepared.layout == "kept" and not prepared.inverted
        assert torch.equal(prepared.pixels, digit)


@pytest.mark.parametrize(
    ("case", "make", "within"),
    [
        ("tight crop, dark on white", lambda digit: on_paper(strokes(digit, 8)), 12.0),
        (
            "small in a corner of a photo",
            lambda digit: on_paper(F.pad(strokes(digit, 3), (10, 300, 8, 250))),
            12.0,
        ),
        (
            "light ink on dark paper",
            lambda digit: on_paper(F.pad(strokes(digit, 5), (40, 40, 40, 40)), 0.25, 0.95),
            12.0,
        ),
        (
            "grey paper, faint pencil",
            lambda digit: on_paper(F.pad(strokes(digit, 5), (40, 40, 40, 40)), 0.8, 0.45),
            12.0,
        ),
    ],
)
def test_a_digit_comes_out_near_the_mnist_layout_of_its_strokes(
    mnist_digits: torch.Tensor, case: str, make, within: float
) -> None:
    gaps = []
    for digit in mnist_digits:
        prepared = prepare_digit(make(digit))
        assert prepared.layout == "mnist"
        gaps.append(distance(prepared.pixels, digit))
    as_padded = [distance(prepare_digit(make(d), as_is=True).pixels, d) for d in mnist_digits[:10]]
    assert sum(gaps) / len(gaps) < within, case
    assert sum(as_padded) / len(as_padded) > 2 * within  # what the layout is worth


@pytest.mark.parametrize("pen", ["thick", "thin"])
def test_thick_and_thin_pens_are_fitted_and_centred_as_mnist(
    mnist_digits: torch.Tensor, pen: str
) -> None:
    for digit in mnist_digits:
        ink = strokes(digit, 10)
        if pen == "thick":  # a wider nib: each stroke grows by 8 of its 10x pixels
            ink = F.max_pool2d(ink[None, None], 17, stride=1, padding=8)[0, 0]
        else:  # a fine one: only the middle of each stroke
            ink = (ink > 0.9).float()
        prepared = prepare_digit(on_paper(F.pad(ink, (30, 30, 30, 30))))
        longer, row, column = layout_of(prepared.pixels)
        assert longer in (19, 20, 21)
        assert abs(row - 14) <= 0.6 and abs(column - 14) <= 0.6
        assert distance(prepared.pixels, digit) < 40  # still the same digit's shape


def test_polarity_is_read_from_the_border_unless_given(mnist_digits: torch.Tensor) -> None:
    digit = mnist_digits[0]
    dark_on_light = on_paper(F.pad(strokes(digit, 4), (20, 20, 20, 20)))
    detected = prepare_digit(dark_on_light)
    assert detected.inverted and detected.polarity == "detected"
    light_on_dark = 255 - dark_on_light
    assert not prepare_digit(light_on_dark).inverted
    assert torch.equal(prepare_digit(light_on_dark).pixels, detected.pixels)
    given = prepare_digit(light_on_dark, invert=False)
    assert given.describe() == {"inverted": False, "polarity": "given", "layout": "mnist"}
    with pytest.raises(BlankImageError, match="polarity given the right way round"):
        prepare_digit(dark_on_light, invert=False)  # no light ink on that white paper


@pytest.mark.parametrize(
    ("case", "paper", "pen", "inverted"),
    [
        ("dark ink on dim paper", 0.4, 0.05, True),
        ("chalk on a grey board", 0.55, 0.95, False),
    ],
)
def test_polarity_is_read_against_the_image_own_levels(
    mnist_digits: torch.Tensor, case: str, paper: float, pen: float, inverted: bool
) -> None:
    digit = mnist_digits[2]
    prepared = prepare_digit(on_paper(F.pad(strokes(digit, 5), (30, 30, 30, 30)), paper, pen))
    assert prepared.inverted == inverted, case
    assert distance(prepared.pixels, digit) < 12


def test_a_speck_of_dust_does_not_shrink_the_digit(mnist_digits: torch.Tensor) -> None:
    digit = mnist_digits[5]
    page = on_paper(F.pad(strokes(digit, 5), (60, 200, 40, 180)))
    page[-3, -3] = 0  # a black speck in the far corner
    prepared = prepare_digit(page)
    longer, _, _ = layout_of(prepared.pixels)
    assert longer in (19, 20, 21) and distance(prepared.pixels, digit) < 12


def test_arrays_pil_images_colour_and_alpha_give_the_same_digit(
    mnist_digits: torch.Tensor,
) -> None:
    paper = on_paper(F.pad(strokes(mnist_digits[3], 4), (12, 12, 12, 12)))
    expected = prepare_digit(paper).pixels
    rgb = paper[..., None].expand(*paper.shape, 3).contiguous()
    transparent = torch.zeros(*paper.shape, 4, dtype=torch.uint8)
    transparent[..., 3] = 255 - paper  # black ink, its darkness as opacity, on nothing
    for image in (
        paper.numpy(),
        paper.float() / 255,
        rgb,
        Image.fromarray(rgb.numpy(), mode="RGB"),
        Image.fromarray(transparent.numpy(), mode="RGBA"),
    ):
        assert distance(prepare_digit(image).pixels, expected) <= 1.0


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (torch.zeros(3, 28, 28), r"\(H, W\), \(H, W, 3\) or \(H, W, 4\)"),
        (torch.zeros(0, 5, dtype=torch.uint8), "empty"),
        (torch.full((28, 28), float("nan")), "from 0 to 1"),
        (torch.full((28, 28), 2.0), "from 0 to 1"),
        (torch.zeros(28, 28, dtype=torch.int64), "uint8 or float"),
        ("digit.png", "tensor, a NumPy array or a PIL image"),
    ],
)
def test_what_is_not_an_image_is_refused(image: object, message: str) -> None:
    with pytest.raises(zoo.InvalidInputError, match=message):
        prepare_digit(image)


@pytest.mark.parametrize("level", [0, 128, 255])
def test_a_blank_image_is_an_error_not_a_guess(level: int, tmp_path: Path) -> None:
    blank = torch.full((60, 40), level, dtype=torch.uint8)
    blank[5, 5] = min(level + 20, 255)  # a speck too faint to be ink
    with pytest.raises(BlankImageError, match="no digit in the image"):
        prepare_digit(blank)
    Image.fromarray(blank.numpy()).save(tmp_path / "blank.png")
    result = CliRunner().invoke(main, ["predict", "lenet.mnist", str(tmp_path / "blank.png")])
    assert result.exit_code == 1 and "blank.png: no digit in the image" in result.stderr


def test_a_huge_image_is_shrunk_before_it_is_worked_on() -> None:
    huge = torch.full((4000, 3000), 255, dtype=torch.uint8)
    huge[1000:3000, 1400:1600] = 0  # a "1", 2000 pixels tall
    prepared = prepare_digit(huge)
    longer, row, column = layout_of(prepared.pixels)
    assert longer in (19, 20) and abs(row - 14) <= 0.6 and abs(column - 14) <= 0.6


def test_mnist_pngs_read_back_get_the_answers_of_their_tensors(
    mnist_digits: torch.Tensor, tmp_path: Path
) -> None:
    model = zoo.load("mc_dropout_lenet.mnist")
    paths = []
    for index, digit in enumerate(mnist_digits[:12]):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(digit.numpy()).save(paths[-1])
    from_files = classify_files(model, paths, samples=8, seed=3)
    from_tensors = classify_digits(model, list(mnist_digits[:12]), samples=8, seed=3)
    for entry, expected in zip(from_files, from_tensors, strict=True):
        assert entry.pop("prepared")["layout"] == "kept"
        entry.pop("image")
        assert entry == expected


def test_an_image_gets_the_same_answer_in_any_company(
    mnist_digits: torch.Tensor, tmp_path: Path
) -> None:
    paths = []
    for index, digit in enumerate(mnist_digits[:5]):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(on_paper(strokes(digit, 3)).numpy()).save(paths[-1])
    arguments = ["predict", "mc_dropout_lenet.mnist", "--json", "--samples", "8"]
    alone = json.loads(CliRunner().invoke(main, [*arguments, paths[2]]).stdout)
    together = json.loads(CliRunner().invoke(main, [*arguments, *paths]).stdout)
    reordered = json.loads(CliRunner().invoke(main, [*arguments, *paths[::-1]]).stdout)
    assert alone[0] == together[2] == reordered[2]
    other_seed = json.loads(CliRunner().invoke(main, [*arguments, paths[2], "--seed", "1"]).stdout)
    assert other_seed[0]["confidence"] != alone[0]["confidence"]


def test_predict_says_what_was_decided(mnist_digits: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "paper.png"
    Image.fromarray(on_paper(strokes(mnist_digits[0], 6)).numpy()).save(path)
    result = CliRunner().invoke(main, ["predict", "lenet.mnist", str(path), "--json"])
    [entry] = json.loads(result.stdout)
    assert entry["prepared"] == {"inverted": True, "polarity": "detected", "layout": "mnist"}
    light = tmp_path / "light.png"
    Image.fromarray(255 - on_paper(strokes(mnist_digits[0], 6)).numpy()).save(light)
    forced = CliRunner().invoke(main, ["predict", "lenet.mnist", str(light), "--no-invert"])
    assert "prepared: not inverted (as asked), laid out as MNIST's digits are" in forced.stdout
    wrong = CliRunner().invoke(main, ["predict", "lenet.mnist", str(path), "--no-invert"])
    assert wrong.exit_code == 1 and "polarity given the right way round" in wrong.stderr
    as_is = CliRunner().invoke(main, ["predict", "lenet.mnist", str(path), "--as-is"])
    assert "padded to a square and resized (--as-is)" in as_is.stdout
