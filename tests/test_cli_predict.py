"""`zoo predict` and the image reading under it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import zoo
from zoo.cli import main
from zoo.devices import seeded
from zoo.errors import ImageFileError
from zoo.images import classify_files, image_seed, read_digit_image


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "mc-dropout"
    return zoo.create_model("mc_dropout_lenet").save_pretrained(folder)


def save_image(path: Path, pixels: torch.Tensor, mode: str = "L") -> Path:
    """Save (H, W) or (H, W, channels) uint8 ``pixels`` as an image file."""
    Image.fromarray(pixels.numpy(), mode=mode).save(path)
    return path


def digit(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (28, 28), dtype=torch.uint8, generator=generator)


def mnist_like() -> torch.Tensor:
    """A 28x28 digit laid out as MNIST's are: 20 pixels tall, centred by its mass."""
    pixels = torch.zeros(28, 28, dtype=torch.uint8)
    pixels[4:24, 12:16] = 255  # a "1" with a foot and a flag, balanced about the centre
    pixels[4:6, 9:16] = 180
    pixels[22:24, 12:19] = 180
    return pixels


def test_a_28x28_mnist_like_png_is_read_pixel_for_pixel(tmp_path: Path) -> None:
    pixels = mnist_like()
    path = save_image(tmp_path / "digit.png", pixels)
    kept = read_digit_image(path)
    assert torch.equal(kept.pixels, pixels) and kept.layout == "kept" and not kept.inverted
    on_paper = read_digit_image(save_image(tmp_path / "paper.png", 255 - pixels))
    assert torch.equal(on_paper.pixels, pixels) and on_paper.inverted  # from its white border
    noise = digit()
    assert torch.equal(read_digit_image(save_image(tmp_path / "noise.png", noise), invert=False,
                                        as_is=True).pixels, noise)  # fmt: skip


def test_any_size_and_colour_becomes_28x28_grayscale(tmp_path: Path) -> None:
    white_on_black = torch.zeros(60, 120, 3, dtype=torch.uint8)
    white_on_black[10:50, 50:70] = 255  # a bar in the middle of a wide colour image
    path = tmp_path / "wide.jpg"
    Image.fromarray(white_on_black.numpy(), mode="RGB").save(path)
    image = read_digit_image(path).pixels
    assert image.shape == (28, 28) and image.dtype == torch.uint8
    assert image[:, :5].max() < 40 and image[:, -5:].max() < 40  # black border stays black
    assert image[14, 14] > 200  # the bar stays in the centre, still bright


def test_transparent_pixels_are_shown_on_white(tmp_path: Path) -> None:
    rgba = torch.zeros(28, 28, 4, dtype=torch.uint8)  # transparent black everywhere...
    rgba[10:18, 10:18, 3] = 255  # ...but an opaque black square
    path = save_image(tmp_path / "ink.png", rgba, mode="RGBA")
    image = read_digit_image(path, invert=True).pixels
    assert image[0, 0] == 0 and image[14, 14] == 255  # white paper and black ink, inverted


def test_unreadable_files_raise_an_error_naming_them(tmp_path: Path) -> None:
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")
    with pytest.raises(ImageFileError, match=r"notes\.png"):
        read_digit_image(not_an_image)
    with pytest.raises(ImageFileError, match=r"missing\.png"):
        read_digit_image(tmp_path / "missing.png")


def test_predict_prints_label_confidence_uncertainty_and_votes(
    model_folder: Path, tmp_path: Path
) -> None:
    paths = [save_image(tmp_path / f"{i}.png", digit(i)) for i in range(2)]
    result = CliRunner().invoke(main, ["predict", str(model_folder), *map(str, paths), "-h"])
    assert "--invert" in result.output and "28x28" in result.output
    result = CliRunner().invoke(
        main, ["predict", str(model_folder), *map(str, paths), "--samples", "5"]
    )
    assert result.exit_code == 0, result.output
    blocks = result.output.strip().split("\n")
    assert len(blocks) == 6  # per image: a summary line, a line of votes, how it was prepared
    for path, summary, votes, prepared in zip(
        paths, blocks[::3], blocks[1::3], blocks[2::3], strict=True
    ):
        assert summary.startswith(f"{path}: ") and "confidence" in summary
        assert "mutual information" in summary
        assert len(votes.split(":")[1].split()) == 5
        assert prepared.startswith("  prepared: ") and "from its border" in prepared


def test_predict_json_matches_the_python_api(model_folder: Path, tmp_path: Path) -> None:
    path = save_image(tmp_path / "digit.png", digit())
    result = CliRunner().invoke(main, ["predict", str(model_folder), str(path), "--json"])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.output)
    model = zoo.from_pretrained(model_folder)
    prepared = read_digit_image(path)
    with seeded(image_seed(0, prepared.pixels)):  # from the command's default seed
        [expected] = model.predict(prepared.pixels).per_image(model.class_labels)
    assert entry == {"image": str(path), "prepared": prepared.describe(), **expected}
    assert len(entry["votes"]) == 16


def test_predict_is_seeded(model_folder: Path, tmp_path: Path) -> None:
    paths = [str(save_image(tmp_path / f"{i}.png", digit(i))) for i in range(4)]
    model = zoo.from_pretrained(model_folder)
    first, again = (classify_files(model, paths, seed=1) for _ in range(2))
    other = classify_files(model, paths, seed=2)
    assert first == again
    assert [entry["votes"] for entry in first] != [entry["votes"] for entry in other]


def test_results_keep_the_order_of_the_files_given(model_folder: Path, tmp_path: Path) -> None:
    good, bad = save_image(tmp_path / "good.png", digit()), tmp_path / "bad.png"
    bad.write_text("not a picture")
    arguments = [str(good), str(bad), str(good)]
    result = CliRunner().invoke(main, ["predict", str(model_folder), *arguments, "--json"])
    assert result.exit_code == 1
    entries = json.loads(result.stdout)
    assert [entry["image"] for entry in entries] == arguments
    assert "error" in entries[1] and "votes" in entries[0] and "votes" in entries[2]


def test_a_bad_file_is_reported_and_the_others_still_answered(
    model_folder: Path, tmp_path: Path
) -> None:
    good = save_image(tmp_path / "good.png", digit())
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG but truncated")
    result = CliRunner().invoke(main, ["predict", str(model_folder), str(bad), str(good)])
    assert result.exit_code == 1
    assert f"{good}: " in result.stdout
    assert "bad.png" in result.stderr and isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("lenet.cifar10", "no weights 'cifar10'"),
        ("nope", "is not a registered model, an existing folder"),
    ],
)
def test_predict_with_an_unusable_model_exits_2(model: str, message: str, tmp_path: Path) -> None:
    path = save_image(tmp_path / "digit.png", digit())
    result = CliRunner().invoke(main, ["predict", model, str(path)])
    assert result.exit_code == 2 and message in result.stderr


def test_predict_runs_as_a_real_process(model_folder: Path, tmp_path: Path) -> None:
    path = save_image(tmp_path / "digit.png", digit())
    executable = Path(sys.executable).with_name("zoo")
    result = subprocess.run(
        [str(executable), "predict", str(model_folder), str(path), "--samples", "3", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)[0]["votes"]) == 3


MEMORY_CAP = """
import resource, sys
cap = 2 << 30  # 2 GiB of heap: torch and a LeNet need a few hundred MB
resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
from zoo.cli import main
main(sys.argv[1:])
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_DATA bounds the heap on Linux")
def test_files_that_would_explode_in_memory_or_block_are_refused_and_the_others_answered(
    model_folder: Path, tmp_path: Path
) -> None:
    from zoo.limits import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE

    good = save_image(tmp_path / "good.png", digit())
    huge = {
        "wide.png": (200_000, 1),  # padded to a square, 40 G pixels
        "tall.png": (1, 60_000),
        "square.png": (MAX_IMAGE_SIDE + 1, MAX_IMAGE_SIDE + 1),
        "many.png": (MAX_IMAGE_SIDE, MAX_IMAGE_PIXELS // MAX_IMAGE_SIDE + 1),
    }
    for name, size in huge.items():
        Image.new("L", size).save(tmp_path / name)
        assert (tmp_path / name).stat().st_size < 100_000
    fifo = tmp_path / "fifo.png"  # would block a reader that waits for a writer
    os.mkfifo(fifo)
    paths = [str(tmp_path / name) for name in huge] + [str(fifo), str(good)]
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_CAP, "predict", str(model_folder), *paths, "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # some files could not be answered
    entries = json.loads(result.stdout)
    for entry, (name, (width, height)) in zip(entries, huge.items(), strict=False):
        assert entry["image"].endswith(name)
        assert f"the image is {width:,} x {height:,} pixels" in entry["error"]
    assert "not a regular file" in entries[-2]["error"]
    assert "votes" in entries[-1]
    assert result.stderr.count("Error:") == len(huge) + 1


def test_a_model_whose_outputs_overflow_exits_2_and_writes_no_nan(
    tmp_path: Path,
) -> None:
    model = zoo.create_model("lenet")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1e12)  # finite weights, infinite logits
    folder = model.save_pretrained(tmp_path / "overflowing")
    path = save_image(tmp_path / "digit.png", digit())
    result = CliRunner().invoke(main, ["predict", str(folder), str(path), "--json"])
    assert result.exit_code == 2
    assert "NaN or infinite outputs" in result.stderr
    assert "NaN" not in result.stdout and "Infinity" not in result.stdout


def test_file_names_are_printed_escaped(model_folder: Path, tmp_path: Path) -> None:
    path = save_image(tmp_path / "a\x1b[2Jb\nc.png", digit())
    result = CliRunner().invoke(main, ["predict", str(model_folder), str(path)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "a\\x1b[2Jb\\nc.png: " in result.output


def test_an_image_format_that_runs_other_programs_is_never_opened(
    model_folder: Path, tmp_path: Path
) -> None:
    eps = tmp_path / "digit.eps"
    eps.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n")
    result = CliRunner().invoke(main, ["predict", str(model_folder), str(eps)])
    assert result.exit_code == 1
    assert "not an image in a format read here (PNG, JPEG" in result.stderr
