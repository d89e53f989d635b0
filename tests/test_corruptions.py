"""The MNIST-C corruptions: what each does to an image, reproducibly, in uint8 and in shape."""

from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo import corruptions
from zoo.corruptions import CHUNK, CORRUPTIONS, SEVERITIES, corrupt
from zoo.shift import rotate as rotate_by_degrees

# Corruptions that draw nothing at random: the seed cannot change them.
FIXED = {"scale", "brightness", "stripe", "canny_edges"}


def digits(count: int = 12) -> torch.Tensor:
    """Stroke-like shapes of MNIST's size and brightness, each a little different."""
    generator = torch.Generator().manual_seed(3)
    images = torch.zeros(count, 28, 28, dtype=torch.uint8)
    for index in range(count):
        top, left = 5 + index % 4, 7 + index % 5
        images[index, top : top + 16, left : left + 3] = 255  # an upright stroke
        images[index, top : top + 3, left : left + 12] = 200  # a bar across its top
        images[index, top + 8, left + 3 : left + 10] = 128
    noise = torch.randint(0, 40, images.shape, generator=generator, dtype=torch.uint8)
    return torch.where(images > 0, images - noise.clamp(max=images), images)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_each_corruption_changes_the_image_and_keeps_its_form(name: str) -> None:
    images = digits()
    corrupted = corrupt(images, name, seed=0)
    assert corrupted.dtype == torch.uint8 and corrupted.shape == images.shape
    changed = (corrupted != images).flatten(1).any(1)
    assert changed.all(), f"{name} left {int((~changed).sum())} images as they were"
    assert torch.equal(images, digits())  # the input is not touched


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_each_corruption_is_reproducible_for_a_seed(name: str) -> None:
    images = digits()
    first = corrupt(images, name, seed=5)
    assert torch.equal(first, corrupt(images, name, seed=5))
    other = corrupt(images, name, seed=6)
    assert torch.equal(first, other) == (name in FIXED)


def test_every_corruption_has_its_severity_documented() -> None:
    assert list(SEVERITIES) == list(CORRUPTIONS)
    assert len(CORRUPTIONS) == 15
    for name, corruption in CORRUPTIONS.items():
        assert "MNIST-C" in corruption.__doc__, name


def test_bad_input_is_refused_with_a_clear_error() -> None:
    images = digits()
    with pytest.raises(zoo.InvalidInputError, match="corruption must be one of shot_noise"):
        corrupt(images, "snow")
    with pytest.raises(zoo.InvalidInputError, match="corruption must be one of"):
        corrupt(images, ["fog"])  # type: ignore[arg-type]
    with pytest.raises(
        zoo.InvalidInputError, match=r"\(N, 28, 28\) uint8 images, not \(12, 28, 28\)"
    ):
        corrupt(images.float(), "fog")
    with pytest.raises(zoo.InvalidInputError, match=r"not \(2, 32, 32\)"):
        corrupt(torch.zeros(2, 32, 32, dtype=torch.uint8), "fog")
    for seed in (-1, 2**70, 1.5, "0"):
        with pytest.raises(zoo.InvalidInputError, match="seed must be an integer"):
            corrupt(images, "fog", seed=seed)  # type: ignore[arg-type]
    assert corrupt(images[:0], "fog").shape == (0, 28, 28)


def test_chunks_are_drawn_from_their_own_streams_whatever_the_default_dtype() -> None:
    images = digits(2 * CHUNK + 5)
    whole = corrupt(images, "impulse_noise", seed=4)
    # a chunk starting at the same place gets the same corruption alone
    assert torch.equal(corrupt(images[:CHUNK], "impulse_noise", seed=4), whole[:CHUNK])
    assert not torch.equal(whole[:CHUNK], whole[CHUNK : 2 * CHUNK])
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for name in CORRUPTIONS:
            assert torch.equal(corrupt(images[:20], name, seed=4), corrupt_again(images, name))
    finally:
        torch.set_default_dtype(default)


def corrupt_again(images: torch.Tensor, name: str) -> torch.Tensor:
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        return corrupt(images[:20], name, seed=4)
    finally:
        torch.set_default_dtype(default)


def test_brightness_adds_half_the_range_and_stripe_inverts_the_side_quarters() -> None:
    images = digits()
    brighter = corrupt(images, "brightness")
    expected = ((images.float() / 255 + 0.5).clamp(max=1) * 255).round().to(torch.uint8)
    assert torch.equal(brighter, expected)
    striped = corrupt(images, "stripe")
    assert torch.equal(striped[..., 7:21], images[..., 7:21])
    assert torch.equal(striped[..., :7], 255 - images[..., :7])
    assert torch.equal(striped[..., 21:], 255 - images[..., 21:])


def test_translate_moves_three_pixels_along_each_axis_with_black_coming_in() -> None:
    images = digits()
    moved = corrupt(images, "translate", seed=1)
    directions = set()
    for image, result in zip(images, moved, strict=True):
        matches = []
        for rows in (-3, 3):
            for columns in (-3, 3):
                padded = torch.nn.functional.pad(image, (3, 3, 3, 3))
                window = padded[3 - rows : 31 - rows, 3 - columns : 31 - columns]
                if torch.equal(window, result):
                    matches.append((rows, columns))
        assert len(matches) == 1
        directions.add(matches[0])
    assert len(directions) > 1  # the directions are drawn per image


def test_rotate_turns_by_0_4_radians_either_way_as_the_rotation_grid_does() -> None:
    images = digits()
    turned = corrupt(images, "rotate", seed=2)
    degrees = math.degrees(0.4)
    signs = set()
    for index in range(len(images)):
        for sign in (-1, 1):
            reference = rotate_by_degrees(images[index : index + 1], sign * degrees)[0]
            if (reference.int() - turned[index].int()).abs().max() <= 1:  # float rounding
                signs.add(sign)
                break
        else:
            pytest.fail(f"image {index} is not turned by 0.4 rad either way")
    assert signs == {-1, 1}


def test_scale_shrinks_the_ink_about_the_centre() -> None:
    images = digits()
    shrunk = corrupt(images, "scale")
    ratio = shrunk.float().sum((1, 2)) / images.float().sum((1, 2))
    assert ((ratio - 0.7**2).abs() < 0.08).all()  # the area scales by 0.7 squared
    assert (shrunk[:, :4].sum() == 0) and (shrunk[:, -4:].sum() == 0)


def test_shear_slants_by_the_sine_of_its_angle_about_the_centre() -> None:
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    image[0, 4:24, 13:15] = 255  # an upright bar through the centre
    sheared = corrupt(image, "shear", seed=0)[0]
    columns = torch.arange(28, dtype=torch.float32)

    def centre_of(row: int) -> float:
        weights = sheared[row].float()
        return float((weights * columns).sum() / weights.sum())

    # Output (x, y) reads the input at (x - sin(0.4) y, cos(0.4) y) about the centre, so row y
    # shows the upright bar sin(0.4) y to one side: 11 sin(0.4) between rows 8 and 19. (The
    # shear of scikit-image 0.21 and later, which MNIST-C did not use, would give 11 tan(0.4).)
    shift = abs(centre_of(19) - centre_of(8))
    assert shift == pytest.approx(11 * math.sin(0.4), abs=0.1)
    middle = centre_of(13)
    assert abs(middle - 13.5) < 0.3  # the centre stays


def test_shot_noise_counts_photons_and_leaves_black_black() -> None:
    images = digits()
    noisy = corrupt(images, "shot_noise")
    assert set(noisy.unique().tolist()) <= {0, 85, 170, 255}  # counts 0..3 of 3
    assert (noisy[images == 0] == 0).all()
    grey = torch.full((200, 28, 28), 51, dtype=torch.uint8)  # 0.2: mean count 0.6
    counts = corrupt(grey, "shot_noise").float() / 85
    assert counts.mean().item() == pytest.approx(0.6, abs=0.01)  # P(count >= 3) is small


def test_impulse_noise_replaces_17_percent_of_the_pixels_by_black_or_white() -> None:
    grey = torch.full((100, 28, 28), 100, dtype=torch.uint8)
    noisy = corrupt(grey, "impulse_noise")
    replaced = noisy != 100
    assert set(noisy[replaced].unique().tolist()) == {0, 255}
    assert replaced.float().mean().item() == pytest.approx(0.17, abs=0.005)
    assert (noisy[replaced] == 255).float().mean().item() == pytest.approx(0.5, abs=0.02)


def test_motion_blur_trails_on_one_side_and_keeps_the_ink() -> None:
    dot = torch.zeros(20, 28, 28, dtype=torch.uint8)
    dot[:, 14, 14] = 255
    blurred = corrupt(dot, "motion_blur")
    for image in blurred:
        rows, columns = image.nonzero(as_tuple=True)
        assert (columns <= 14).all()  # each pixel reads ahead along the angle: a trail behind
        assert ((rows - 14).abs() <= 14 - columns).all()  # within 45 degrees
    ratio = blurred.float().sum((1, 2)) / 255
    assert ((ratio - 1).abs() < 0.05).all()


def test_glass_blur_blurs_down_the_columns_only_and_swaps_locally() -> None:
    images = digits(40)
    blurred = corrupt(images, "glass_blur")
    ratio = blurred.float().sum((1, 2)) / images.float().sum((1, 2))
    assert ((ratio - 1).abs() < 0.05).all()  # swaps move ink, blurs keep it
    line = torch.zeros(30, 28, 28, dtype=torch.uint8)
    line[:, 4:24, 10] = 255  # an upright line, one pixel wide
    glassy = corrupt(line, "glass_blur")
    # A swap brings a pixel one column to the right at most, once per pass; no blur spreads
    # across columns. (A blur along the rows too would put ink in column 13 and beyond.)
    assert glassy[..., 13:].sum() == 0
    assert glassy[..., 11:13].sum() > 0 and glassy[..., :10].sum() > 0


def test_fog_adds_three_plasma_layers_and_rescales_by_the_brightest_pixel(monkeypatch) -> None:
    images = digits()
    layer = torch.linspace(0, 1, 28 * 28).reshape(28, 28)
    monkeypatch.setattr(
        corruptions, "_plasma_corner", lambda count, *_: layer.expand(count, 28, 28)
    )
    fogged = corrupt(images, "fog")
    x = images.float() / 255
    brightest = x.amax(dim=(1, 2), keepdim=True)
    expected = ((x + 3 * layer) * brightest / (brightest + 3)).clamp(0, 1) * 255
    assert (fogged.float() - expected).abs().max() <= 0.5 + 1e-4


def test_the_plasma_is_scaled_to_the_whole_map_and_differs_per_image() -> None:
    generator = torch.Generator().manual_seed(0)
    corners = corruptions._plasma_corner(3, 1.4, generator, torch.device("cpu"))
    assert corners.shape == (3, 28, 28)
    assert corners.min() >= 0 and corners.max() <= 1
    assert not torch.equal(corners[0], corners[1])


def test_spatter_drops_follow_the_noise_field(monkeypatch) -> None:
    white = torch.full((4, 28, 28), 255, dtype=torch.uint8)
    level = torch.zeros(4, 28, 28)
    monkeypatch.setattr(corruptions, "_normal", lambda shape, *_: level)
    assert torch.equal(corrupt(white, "spatter"), white)  # at the level: no drop
    level.fill_(1.0)  # far above: one drop over everything, all mud
    assert (corrupt(white, "spatter") == 63).all()
    level.zero_()
    level[:, :, :14] = 1.0  # drops on the left half: mud there, paper on the right
    half = corrupt(white, "spatter")
    assert (half[:, :, :10] == 63).all() and (half[:, :, 18:] == 255).all()


def test_the_dotted_line_lies_in_its_dot_columns_only() -> None:
    blank = torch.zeros(30, 28, 28, dtype=torch.uint8)
    lined = corrupt(blank, "dotted_line")
    columns = lined.amax(dim=(0, 1)) > 0
    dots = [2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26]
    assert columns.nonzero().flatten().tolist() == dots
    assert (lined.flatten(1).amax(1) >= 240).all()  # the line itself is white


def test_the_zigzag_spans_columns_2_to_25_and_swings() -> None:
    blank = torch.zeros(30, 28, 28, dtype=torch.uint8)
    zigzags = corrupt(blank, "zigzag")
    assert (zigzags.flatten(1).amax(1) == 255).all()
    columns = zigzags.amax(dim=(0, 1)).nonzero().flatten()
    assert columns.min() >= 2 and columns.max() <= 25
    heights = (zigzags > 0).sum(1)  # lit rows per column
    assert heights[:, 4:22].float().mean() > 2  # more than a straight line's


def test_canny_finds_the_outline_of_a_square() -> None:
    square = torch.zeros(1, 28, 28, dtype=torch.uint8)
    square[0, 8:20, 8:20] = 255
    edges = corrupt(square, "canny_edges")[0]
    assert set(edges.unique().tolist()) == {0, 255}
    assert edges[12:16, 12:16].sum() == 0  # nothing inside
    assert edges[:5].sum() == 0 and edges[:, :5].sum() == 0  # nothing far outside
    for side in (edges[7:9, 10:18], edges[19:21, 10:18], edges[10:18, 7:9], edges[10:18, 19:21]):
        assert (side.amax(0 if side.shape[0] == 2 else 1) == 255).all()  # every side traced
    assert corrupt(torch.zeros(1, 28, 28, dtype=torch.uint8), "canny_edges").sum() == 0
