"""The fifteen corruptions of MNIST-C, generated in torch on the images' device.

MNIST-C (Mu and Gilmer, "MNIST-C: A Robustness Benchmark for Computer Vision", ICML 2019
Workshop on Uncertainty and Robustness in Deep Learning; code: google-research/mnist-c,
``corruptions.py``) corrupts each MNIST test image in one of fifteen ways. This module makes
the same corruptions without ImageMagick, OpenCV or scikit-image, for a whole batch of images
at once, on whatever device holds them:

- each one takes (N, 28, 28) uint8 images and a `torch.Generator` on their device, and returns
  (N, 28, 28) uint8 images: it works on intensities in [0, 1] as the original does, clips
  them there and rounds them back to uint8, so that a corrupted image is an image like any
  other;
- each is at one severity: the one its function in MNIST-C's ``corruptions.py`` takes by
  default (the numbers are in `SEVERITIES`);
- every random choice the original makes per image (a noise field, an angle, a direction) is
  drawn per image from a generator that the seed, the corruption and the chunk of images fix
  (`corrupt`), so the same images in the same order get the same corruptions on the same kind
  of device. A CUDA or MPS generator draws other numbers than the CPU's: the images then
  differ, their statistics do not.

Each function's docstring says what the original does and where this one departs from it.
The transforms are those of scikit-image and SciPy, rewritten for batches: Gaussian filters
truncated at four standard deviations with SciPy's border modes, affine warps that resample
bilinearly with zeros outside as ``skimage.transform.warp`` does, the diamond-square fractal
of the fog, ImageMagick's motion-blur kernel, and Canny's edge detector as scikit-image runs it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.devices import check_seed, derived_seed
from zoo.errors import InvalidInputError

SIZE = 28
FLOAT = torch.float32  # whatever torch's default dtype is
CHUNK = 1000  # images corrupted at once, each chunk from its own generator
CENTRE = (SIZE - 1) / 2  # the pixel coordinate of the image centre, 13.5

# What each corruption's severity sets, as MNIST-C's functions take it by default.
SEVERITIES: dict[str, str] = {
    "shot_noise": "severity 5: Poisson counts at 3 photons per unit intensity",
    "impulse_noise": "severity 4: 17% of the pixels set to black or white",
    "glass_blur": "severity 1: sigma 0.7, swaps up to 1 pixel away, 2 passes",
    "motion_blur": "severity 1: radius 10, sigma 3, at an angle from -45 to 45 degrees",
    "shear": "severity 2: shear angle 0.4 rad, either way",
    "scale": "severity 3: shrunk to 0.7 of its size about the centre",
    "rotate": "severity 2: 0.4 rad (22.9 degrees), either way",
    "brightness": "severity 5: value raised by 0.5",
    "translate": "severity 3: 3 pixels along each axis, either way",
    "stripe": "no severity: the left and right quarters inverted",
    "fog": "severity 5: plasma fractal weight 3, roughness decay 1.4",
    "spatter": "severity 4: blobs of sigma 1 at level 0.65, edges blurred by 1.5",
    "dotted_line": "no severity: one dotted line across the image",
    "zigzag": "no severity: one zigzag across the image",
    "canny_edges": "no severity: the edges alone, Canny with sigma 1",
}

Corruption = Callable[[Tensor, torch.Generator], Tensor]


def corrupt(images: Tensor, name: str, seed: int = 0) -> Tensor:
    """(N, 28, 28) uint8 ``images`` corrupted by the MNIST-C corruption ``name``.

    The images are corrupted in chunks of `CHUNK`, which bounds the memory a corruption
    takes, each chunk drawing its random choices from a generator on the images' device that
    ``seed``, ``name`` and the chunk's place fix: the same images in the same order get the
    same corruptions, and an image's corruption depends on the others in its chunk only
    through where it falls in the chunk's stream.

    Raises:
        InvalidInputError: an unknown name, a seed torch cannot take, or images that are not
            (N, 28, 28) uint8.
    """
    if not isinstance(name, str) or name not in CORRUPTIONS:
        raise InvalidInputError(f"corruption must be one of {', '.join(CORRUPTIONS)}; got {name!r}")
    check_seed(seed)
    check_images(images)
    chunks = []
    for index, chunk in enumerate(torch.split(images, CHUNK)):
        generator = torch.Generator(device=images.device)
        label = f"uncertainty-zoo corruption {name} of seed {seed}, chunk {index}"
        generator.manual_seed(derived_seed(label))
        chunks.append(CORRUPTIONS[name](chunk, generator))
    return torch.cat(chunks) if chunks else images.clone()


def check_images(images: Tensor) -> None:
    """Refuse what is not (N, 28, 28) uint8 images, with a one-line `InvalidInputError`."""
    if (
        not isinstance(images, Tensor)
        or images.dtype != torch.uint8
        or images.dim() != 3
        or tuple(images.shape[1:]) != (SIZE, SIZE)
    ):
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise InvalidInputError(
            f"shifts and corruptions take (N, 28, 28) uint8 images, not {shape}"
        )


# Noise


def shot_noise(images: Tensor, generator: torch.Generator) -> Tensor:
    """Photon noise: each pixel becomes a Poisson count at 3 photons per unit of intensity,
    divided by 3 and clipped to 1 (MNIST-C's ``shot_noise``, severity 5). Counts of 3 and more
    all clip to white, so the count is drawn by inverting the Poisson distribution up to 3,
    which needs uniform numbers only and runs on any device."""
    rate = 3.0 * _intensities(images)
    uniform = _uniform(images.shape, generator, images.device)
    probability = torch.exp(-rate)  # of no photon
    cumulative = probability
    count = torch.zeros_like(rate)
    for photons in range(1, 4):
        count += uniform > cumulative
        probability = probability * rate / photons
        cumulative = cumulative + probability
    return _to_images(count / 3.0)


def impulse_noise(images: Tensor, generator: torch.Generator) -> Tensor:
    """Salt and pepper: each pixel is replaced with probability 0.17, by white or black with
    equal odds (MNIST-C's ``impulse_noise``, severity 4, which calls scikit-image's
    ``random_noise(mode="s&p")``)."""
    intensities = _intensities(images)
    replaced = _uniform(images.shape, generator, images.device) < 0.17
    white = (_uniform(images.shape, generator, images.device) < 0.5).float()
    return _to_images(torch.where(replaced, white, intensities))


# Blur


def glass_blur(images: Tensor, generator: torch.Generator) -> Tensor:
    """Frosted glass (MNIST-C's ``glass_blur``, severity 1): blur with sigma 0.7, truncate to
    uint8, then twice visit the pixels from the bottom-right corner to row and column 2 and,
    with odds of one half, swap each with the pixel at an offset of -1 or 0 along each axis
    (NumPy's ``randint(-1, 1)`` never draws 1); blur again.

    MNIST-C's blurs pass ``multichannel=True`` for a 2-D image, which makes scikit-image take
    its columns for colour channels: both blurs smooth along the columns only, vertically,
    and so do these. The swaps are made in the original's order, for all images at once."""
    sigma, reach, passes = 0.7, 1, 2
    pixels = (_gaussian_blur(_intensities(images), sigma, vertical_only=True) * 255).floor()
    count = len(images)
    flat = pixels.reshape(count, SIZE * SIZE)
    positions = [
        row * SIZE + column
        for row in range(SIZE - reach, reach, -1)
        for column in range(SIZE - reach, reach, -1)
    ]
    for _ in range(passes):
        for position in positions:
            swap = _uniform((count,), generator, images.device) < 0.5
            # offsets along rows and columns, each from -reach to reach - 1
            offsets = torch.randint(
                -reach, reach, (2, count), generator=generator, device=images.device
            )
            partner = (position + offsets[0] * SIZE + offsets[1]).unsqueeze(1)
            here = flat[:, position].clone()
            there = flat.gather(1, partner).squeeze(1)
            flat[:, position] = torch.where(swap, there, here)
            flat.scatter_(1, partner, torch.where(swap, here, there).unsqueeze(1))
    blurred = _gaussian_blur(flat.reshape(images.shape) / 255, sigma, vertical_only=True)
    return _to_images(blurred)


def motion_blur(images: Tensor, generator: torch.Generator) -> Tensor:
    """A camera moving during the exposure (MNIST-C's ``motion_blur``, severity 1, which calls
    ImageMagick's ``MotionBlurImage`` with radius 10, sigma 3 and an angle drawn uniformly
    from -45 to 45 degrees per image). ImageMagick's kernel is one-sided: each pixel becomes
    the weighted mean of the 2 * radius + 1 pixels from it along the angle, tap i weighted by
    exp(-i^2 / (2 sigma^2)) and placed at the rounded offset (i cos a, i sin a), pixels
    outside the image repeating the edge. So it is here."""
    radius, sigma = 10, 3.0
    taps = torch.arange(2 * radius + 1, device=images.device, dtype=FLOAT)
    weights = torch.exp(-(taps**2) / (2 * sigma**2))
    weights = weights / weights.sum()
    angles = torch.deg2rad(_uniform((len(images),), generator, images.device) * 90 - 45)
    # ImageMagick rounds half up: ceil(x - 0.5)
    column_offsets = torch.ceil(taps[None] * torch.cos(angles)[:, None] - 0.5)
    row_offsets = torch.ceil(taps[None] * torch.sin(angles)[:, None] - 0.5)
    intensities = _intensities(images)
    rows, columns = (index.float() for index in _pixel_grid(images.device))
    blurred = torch.zeros_like(intensities)
    for tap in range(len(taps)):
        source_rows = rows[None] + row_offsets[:, tap, None, None]
        source_columns = columns[None] + column_offsets[:, tap, None, None]
        blurred += weights[tap] * _sample(intensities, source_rows, source_columns, edge=True)
    return _to_images(blurred)


# Geometry


def shear(images: Tensor, generator: torch.Generator) -> Tensor:
    """A shear of 0.4 rad about the centre, left or right with equal odds (MNIST-C's ``shear``,
    severity 2: ``AffineTransform(shear=0.4)`` as the inverse map of ``warp``, in the
    scikit-image MNIST-C was written for, before 0.21 changed what ``shear`` means: each output
    pixel (x, y) reads the input at (x - sin(0.4) y, cos(0.4) y) about the centre; bilinear,
    zeros outside)."""
    angle = 0.4 * _signs(len(images), generator, images.device)
    matrices = torch.zeros(len(images), 2, 2, device=images.device, dtype=FLOAT)
    matrices[:, 0, 0] = 1
    matrices[:, 0, 1] = -torch.sin(angle)
    matrices[:, 1, 1] = torch.cos(angle)
    return _to_images(_warp(_intensities(images), matrices))


def scale(images: Tensor, generator: torch.Generator) -> Tensor:
    """The digit shrunk to 0.7 of its size about the centre (MNIST-C's ``scale``, severity 3:
    the inverse map scales by 1 / 0.7; bilinear, zeros outside). Nothing is random."""
    matrices = torch.eye(2, device=images.device, dtype=FLOAT).expand(len(images), 2, 2) / 0.7
    return _to_images(_warp(_intensities(images), matrices))


def rotate(images: Tensor, generator: torch.Generator) -> Tensor:
    """A turn of 0.4 rad (22.9 degrees) about the centre, either way with equal odds (MNIST-C's
    ``rotate``, severity 2; bilinear, zeros outside). `zoo.shift.rotate` is the turn of the
    rotation grid; this is the corruption."""
    angle = 0.4 * _signs(len(images), generator, images.device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    matrices = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    return _to_images(_warp(_intensities(images), matrices))


def translate(images: Tensor, generator: torch.Generator) -> Tensor:
    """The digit moved 3 pixels along each axis, each way with equal odds, zeros coming in
    (MNIST-C's ``translate``, severity 3). Unlike the translation grid of `zoo.shift`, nothing
    wraps around."""
    offsets = 3.0 * torch.stack(
        [_signs(len(images), generator, images.device) for _ in range(2)], dim=-1
    )
    matrices = torch.eye(2, device=images.device, dtype=FLOAT).expand(len(images), 2, 2)
    return _to_images(_warp(_intensities(images), matrices, offsets))


# Intensity


def brightness(images: Tensor, generator: torch.Generator) -> Tensor:
    """Every pixel 0.5 brighter, clipped to white (MNIST-C's ``brightness``, severity 5, adds
    0.5 to the value channel in HSV; for a grey image that is the intensity itself, and its
    conversions back to grey give the same). Nothing is random."""
    return _to_images(_intensities(images) + 0.5)


def stripe(images: Tensor, generator: torch.Generator) -> Tensor:
    """The 7 leftmost and the 7 rightmost columns inverted (MNIST-C's ``stripe``). Nothing is
    random."""
    striped = images.clone()
    for columns in (slice(0, 7), slice(SIZE - 7, SIZE)):
        striped[..., columns] = 255 - images[..., columns]
    return striped


def fog(images: Tensor, generator: torch.Generator) -> Tensor:
    """Fog (MNIST-C's ``fog``, severity 5): a plasma fractal, made by the diamond-square
    algorithm on a 256x256 map that wraps around (random offsets start at 100 and shrink by
    1.4 per level, each drawn uniformly from -wibble^2 to wibble^2 as the original's
    ``wibble * uniform(-wibble, wibble)``), scaled to [0, 1] over the whole map, and its
    top-left 28x28 corner added with weight 3; the sum is scaled by m / (m + 3), m the image's
    brightest pixel. A map per image, built 256 images at a time."""
    weight, decay = 3.0, 1.4
    intensities = _intensities(images)
    layers = torch.cat(
        [
            _plasma_corner(len(chunk), decay, generator, images.device)
            for chunk in torch.split(intensities, 256)
        ]
    )
    brightest = intensities.amax(dim=(-2, -1), keepdim=True)
    return _to_images((intensities + weight * layers) * brightest / (brightest + weight))


def spatter(images: Tensor, generator: torch.Generator) -> Tensor:
    """Drops of mud (MNIST-C's ``spatter``, severity 4): a field of normal noise (mean 0.65,
    standard deviation 0.3) blurred with sigma 1; where it exceeds 0.65 a drop, whose mask is
    blurred with sigma 1.5 and kept where it reaches 0.8; under a drop the pixel fades to the
    mud's grey, 63/255. Blurs repeat the edge pixels, as scikit-image's do."""
    level = 0.65
    field = level + 0.3 * _normal(images.shape, generator, images.device)
    field = _gaussian_blur(field, 1.0)
    drops = (field > level).float()
    mask = _gaussian_blur(drops, 1.5)
    mask = torch.where(mask < 0.8, torch.zeros_like(mask), mask)
    mud = 63 / 255
    return _to_images(_intensities(images) * (1 - mask) + mud * mask)


# Lines and edges


def dotted_line(images: Tensor, generator: torch.Generator) -> Tensor:
    """A dotted line from the left edge to the right (MNIST-C's ``dotted_line``): from row r0
    at column 0 to row r1 at column 27, both drawn from 0 to 26; each pixel brightened by
    1 + log(1 - d / 2.3) at a vertical distance d < 2.3 from the line; the dots are the
    column pairs 2-3, 6-7, ..., 22-23 and column 26 (the original blanks every other pair
    and, drawing only up to column 27, that column too)."""
    count = len(images)
    start = torch.randint(0, SIZE - 1, (count,), generator=generator, device=images.device)
    end = torch.randint(0, SIZE - 1, (count,), generator=generator, device=images.device)
    zeros = torch.zeros(count, device=images.device, dtype=FLOAT)
    line = _line(zeros, start.float(), zeros + SIZE - 1, end.float())
    columns = torch.arange(SIZE, device=images.device)
    dots = (columns // 2) % 2 == 1
    return _to_images(_intensities(images) + line * dots)


def zigzag(images: Tensor, generator: torch.Generator) -> Tensor:
    """A zigzag from column 2 to column 25 (MNIST-C's ``zigzag``): it starts at row r0, drawn
    from 0 to 26, and heads for row r0 + k, k from -5 to 4; along that heading it runs in
    segments 2 pixels long that swing 2 pixels either side, and a last short one ending at the
    heading's length (where the original's formula puts it, at a side offset of
    -1 / (length - 20)). Each segment is drawn as `dotted_line` draws its line, solid."""
    count = len(images)
    device = images.device
    first_row = torch.randint(0, SIZE - 1, (count,), generator=generator, device=device)
    rise = torch.randint(-5, 5, (count,), generator=generator, device=device).to(FLOAT)
    first_column, last_column, step, swing = 2.0, 25.0, 2.0, 2.0
    heading = torch.atan(rise / (last_column - first_column))
    length = (last_column - first_column) / torch.cos(heading)
    # the corners in the heading's frame: along, across. A heading rises at most 5 rows over
    # 23 columns, so its length lies in [23, 23.6]: six swings, then the short end.
    along = [torch.zeros(count, device=device, dtype=FLOAT)]
    across = [torch.zeros(count, device=device, dtype=FLOAT)]
    swings = int((23.0 - step) // (2 * step)) + 1
    for index in range(swings):
        along.append(torch.full((count,), (2 * index + 1) * step, device=device, dtype=FLOAT))
        across.append(torch.full((count,), (-1) ** index * swing, device=device, dtype=FLOAT))
    turns = 2 * step * torch.floor(length / (2 * step))
    along.append(length)
    across.append(across[-1] / (2 * (length - turns)))
    cos, sin = torch.cos(heading), torch.sin(heading)
    columns = [first_column + a * cos - c * sin for a, c in zip(along, across, strict=True)]
    rows = [first_row + a * sin + c * cos for a, c in zip(along, across, strict=True)]
    drawn = torch.zeros(images.shape, device=device, dtype=FLOAT)
    for index in range(1, len(columns)):
        drawn = drawn + _line(columns[index - 1], rows[index - 1], columns[index], rows[index])
    return _to_images(_intensities(images) + drawn)


def canny_edges(images: Tensor, generator: torch.Generator) -> Tensor:
    """The digit's edges alone, white on black (MNIST-C's ``canny_edges``: scikit-image's
    ``feature.canny`` with its defaults). As there: a Gaussian blur of sigma 1 with zeros
    outside, renormalised by the blurred image of ones so that the border is not darkened;
    Sobel gradients, the border pixels repeating; non-maximum suppression against the
    magnitudes interpolated one step either way along the gradient, on pixels inside the
    1-pixel border; hysteresis keeping the 8-connected runs of magnitude >= 0.1 that reach
    0.2. Nothing is random. Ties at the suppression may fall the other way than in
    scikit-image, by float rounding."""
    smoothed = _gaussian_blur(_intensities(images), 1.0, border="zeros")
    smoothed = smoothed / _gaussian_blur(torch.ones_like(smoothed[:1]), 1.0, border="zeros")
    padded = F.pad(smoothed.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)
    # SciPy's sobel: a central difference along the axis, smoothed by (1, 2, 1) across it
    down = padded[:, 2:, :] - padded[:, :-2, :]
    along_rows = down[:, :, :-2] + 2 * down[:, :, 1:-1] + down[:, :, 2:]
    right = padded[:, :, 2:] - padded[:, :, :-2]
    along_columns = right[:, :-2, :] + 2 * right[:, 1:-1, :] + right[:, 2:, :]
    magnitude = torch.hypot(along_rows, along_columns)
    inside = torch.zeros_like(magnitude, dtype=torch.bool)
    inside[:, 1:-1, 1:-1] = True
    candidates = inside & (magnitude > 0)
    # one step along the gradient to the ring of the 8 neighbours, and the magnitude there
    reach = torch.maximum(along_rows.abs(), along_columns.abs()).clamp_min(1e-12)
    row_step, column_step = along_rows / reach, along_columns / reach
    rows, columns = _pixel_grid(images.device)
    ahead = _sample(magnitude, rows + row_step, columns + column_step)
    behind = _sample(magnitude, rows - row_step, columns - column_step)
    ridge = candidates & (ahead <= magnitude) & (behind <= magnitude)
    weak = ridge & (magnitude >= 0.1)
    edges = ridge & (magnitude >= 0.2)
    while True:
        grown = F.max_pool2d(edges.float().unsqueeze(1), 3, stride=1, padding=1).squeeze(1) > 0
        grown &= weak
        if torch.equal(grown, edges):
            break
        edges = grown
    return _to_images(edges.float())


CORRUPTIONS: dict[str, Corruption] = {
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
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
assert tuple(CORRUPTIONS) == tuple(SEVERITIES)


# Helpers


def _intensities(images: Tensor) -> Tensor:
    return images.to(FLOAT) / 255


def _to_images(intensities: Tensor) -> Tensor:
    return (intensities.clamp(0, 1) * 255).round().to(torch.uint8)


def _uniform(shape, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(tuple(shape), generator=generator, device=device, dtype=FLOAT)


def _normal(shape, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=FLOAT)


def _signs(count: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """-1 or 1 with equal odds, ``count`` of them."""
    return torch.randint(0, 2, (count,), generator=generator, device=device).to(FLOAT) * 2 - 1


def _pixel_grid(device: torch.device) -> tuple[Tensor, Tensor]:
    """The row and the column of every pixel, each (28, 28)."""
    index = torch.arange(SIZE, device=device)
    return torch.meshgrid(index, index, indexing="ij")


def _gaussian_blur(
    intensities: Tensor, sigma: float, *, vertical_only: bool = False, border: str = "edge"
) -> Tensor:
    """(N, H, W) ``intensities`` blurred by a Gaussian of ``sigma`` pixels, cut at four sigmas
    as SciPy's ``gaussian_filter`` cuts it, down the columns and (unless ``vertical_only``)
    along the rows; beyond the border the edge pixels repeat (SciPy's "nearest") or, with
    ``border="zeros"``, there are zeros ("constant")."""
    radius = int(4.0 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(intensities.device, torch.float32)
    mode = "replicate" if border == "edge" else "constant"
    passes = [(kernel.view(1, 1, -1, 1), (0, 0, radius, radius))]
    if not vertical_only:
        passes.append((kernel.view(1, 1, 1, -1), (radius, radius, 0, 0)))
    blurred = intensities.unsqueeze(1)
    for weight, padding in passes:
        blurred = F.conv2d(F.pad(blurred, padding, mode=mode), weight)
    return blurred.squeeze(1)


def _sample(values: Tensor, rows: Tensor, columns: Tensor, *, edge: bool = False) -> Tensor:
    """(N, 28, 28) ``values`` read at ``rows`` and ``columns``: bilinearly with zeros outside
    the image, or with ``edge`` at whole pixels, the edge repeating outside."""
    grid = torch.stack([columns, rows], dim=-1).float() * (2 / (SIZE - 1)) - 1
    if grid.dim() == 3:
        grid = grid.expand(len(values), *grid.shape)
    sampled = F.grid_sample(
        values.unsqueeze(1),
        grid,
        mode="nearest" if edge else "bilinear",
        padding_mode="border" if edge else "zeros",
        align_corners=True,
    )
    return sampled.squeeze(1)


def _warp(intensities: Tensor, matrices: Tensor, offsets: Tensor | None = None) -> Tensor:
    """Each image resampled so that output pixel p reads the input at A (p - c) + c + t: A its
    (2, 2) matrix on (column, row) coordinates, c the centre, t its offset (2,) or none; as
    ``skimage.transform.warp`` with an inverse map that keeps the centre fixed."""
    rows, columns = _pixel_grid(intensities.device)
    points = torch.stack([columns, rows], dim=-1).reshape(-1, 2).float() - CENTRE
    sources = points @ matrices.transpose(1, 2) + CENTRE
    if offsets is not None:
        sources = sources + offsets[:, None, :]
    sources = sources.reshape(len(intensities), SIZE, SIZE, 2)
    return _sample(intensities, sources[..., 1], sources[..., 0])


def _line(start_column: Tensor, start_row: Tensor, end_column: Tensor, end_row: Tensor) -> Tensor:
    """(N, 28, 28) lines through two points each, as MNIST-C draws them: 1 + log(1 - d / 2.3)
    at a vertical distance d from the line (nothing from 2.3 on), between the start column
    rounded down and the end column rounded up (that one excluded); nothing when the two
    columns are the same."""
    rows, columns = _pixel_grid(start_column.device)
    rows, columns = rows.float()[None], columns.float()[None]
    run = (end_column - start_column)[:, None, None]
    slope = (end_row - start_row)[:, None, None] / torch.where(run == 0, 1.0, run)
    line_rows = slope * (columns - start_column[:, None, None]) + start_row[:, None, None]
    distance = (rows - line_rows).abs().clamp(max=2.3 - 1e-6)
    strength = (1 + torch.log(1 - distance / 2.3)).clamp(0, 1)
    within = (columns >= torch.floor(start_column)[:, None, None]) & (
        columns < torch.ceil(end_column)[:, None, None]
    )
    return torch.where(within & (run != 0), strength, torch.zeros_like(strength))


def _plasma_corner(
    count: int, decay: float, generator: torch.Generator, device: torch.device
) -> Tensor:
    """The top-left 28x28 corners of ``count`` 256x256 plasma fractals scaled to [0, 1]."""
    size = 256
    heights = torch.zeros(count, size, size, device=device, dtype=FLOAT)
    step, wibble = size, 100.0

    def noisy_mean(total: Tensor) -> Tensor:
        noise = (_uniform(total.shape, generator, device) * 2 - 1) * wibble
        return total / 4 + wibble * noise

    while step >= 2:
        half = step // 2
        corners = heights[:, ::step, ::step]
        square = corners + corners.roll(-1, dims=1)
        square = square + square.roll(-1, dims=2)
        heights[:, half::step, half::step] = noisy_mean(square)
        centres = heights[:, half::step, half::step]
        # points half a step along a row from a corner, then half a step down a column
        heights[:, ::step, half::step] = noisy_mean(
            centres + centres.roll(1, dims=1) + corners + corners.roll(-1, dims=2)
        )
        heights[:, half::step, ::step] = noisy_mean(
            centres + centres.roll(1, dims=2) + corners + corners.roll(-1, dims=1)
        )
        step, wibble = half, wibble / decay
    low = heights.amin(dim=(-2, -1), keepdim=True)
    high = heights.amax(dim=(-2, -1), keepdim=True)
    corner = heights[:, :SIZE, :SIZE]
    return (corner - low) / (high - low)
