"""MNIST and FashionMNIST as whole uint8 tensors in memory, fetched by torchvision.

Evaluation slices batches straight out of these tensors and the model normalises them on its
device, so no per-image transform ever runs. The files live under a data root chosen by, in
order: the ``data_dir`` argument (``--data-dir`` on the command line), ``$ZOO_DATA_DIR``, then
``~/.cache/zoo/data``. The layout is torchvision's (``<root>/MNIST/raw/*.gz``): torchvision
downloads the four official gzip files when they are missing, checks their md5s and extracts
them, and an existing copy is used without any network access.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import torchvision
from torch import Tensor

from zoo.errors import CorruptDatasetError, DatasetNotFoundError, InvalidInputError
from zoo.files import read_head
from zoo.limits import MAX_DATA_FILE_BYTES
from zoo.options import DATASET_NAMES
from zoo.text import first_line, shown

DATA_DIR_VARIABLE = "ZOO_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/zoo/data")
DATASETS = dict(
    zip(DATASET_NAMES, (torchvision.datasets.MNIST, torchvision.datasets.FashionMNIST), strict=True)
)
SPLITS = ("train", "test")


@dataclass(frozen=True)
class ImageSet:
    """One split of a dataset, held in memory.

    Attributes:
        name: the dataset's name in `DATASETS`, e.g. "mnist".
        split: "train" or "test".
        images: (N, 28, 28) uint8 pixels.
        targets: (N,) int64 class indices.
        folder: the folder the files were read from.
        file_md5s: the md5 of each file read, by file name, to identify the exact data.
    """

    name: str
    split: str
    images: Tensor
    targets: Tensor
    folder: Path
    file_md5s: dict[str, str]

    def __len__(self) -> int:
        return len(self.targets)


def data_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``data_dir``, else ``$ZOO_DATA_DIR``, else ``~/.cache/zoo/data``."""
    if data_dir is not None and (
        not isinstance(data_dir, (str, os.PathLike)) or "\0" in str(os.fspath(data_dir))
    ):
        raise InvalidInputError(f"data_dir must be a folder's path, not {shown(data_dir)}")
    chosen = data_dir or os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser()


def load_dataset(
    name: str, split: str = "test", data_dir: str | os.PathLike[str] | None = None
) -> ImageSet:
    """Load a split of ``name`` ("mnist" or "fashion_mnist"), downloading it when missing.

    Raises:
        InvalidInputError: an unknown dataset name or split.
        DatasetNotFoundError: the files are missing and cannot be downloaded; the message
            names the folder and the files it needs.
        CorruptDatasetError: a file is damaged (wrong md5, truncated); the message names it.
    """
    dataset_class = DATASETS[check_dataset_name(name)]
    if split not in SPLITS:
        raise InvalidInputError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    root = data_root(data_dir)
    folder = _raw_folder(root, dataset_class)
    _check_regular_files(folder, split, dataset_class)
    try:
        dataset = _quietly(lambda: dataset_class(root, train=split == "train", download=True))
    except Exception as error:  # torchvision raises bare RuntimeErrors, AssertionErrors, OSErrors
        raise _explain_failure(dataset_class, root, split, error) from None
    images, targets = dataset.data, dataset.targets
    _check_contents(images, targets, len(dataset.classes), folder)
    md5s = {path.name: _md5(path) for path in _extracted_files(folder, split)}
    return ImageSet(name, split, images, targets, folder, md5s)


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it is a key of `DATASETS`, else raise `InvalidInputError`."""
    if not isinstance(name, str) or name not in DATASETS:
        raise InvalidInputError(f"unknown dataset {shown(name)}; known: {', '.join(DATASETS)}")
    return name


def _quietly(make_dataset):
    """Run torchvision with its download messages sent to stderr, keeping stdout for results."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            return make_dataset()
    finally:
        sys.stderr.write(captured.getvalue())


def _explain_failure(
    dataset_class: type, root: Path, split: str, error: Exception
) -> DatasetNotFoundError | CorruptDatasetError:
    """Turn a torchvision failure into an error that names the file at fault and the fix."""
    folder = _raw_folder(root, dataset_class)
    how_to_fix = (
        f"pass --data-dir ROOT (data_dir= in Python) or set {DATA_DIR_VARIABLE}=ROOT, where "
        f"ROOT/{dataset_class.__name__}/raw holds them"
    )
    extracted = _extracted_files(folder, split)
    for path in extracted:
        if path.exists() and not _is_complete_idx(path):
            return CorruptDatasetError(
                f"{path} is truncated or not an IDX file; delete it and run again to extract "
                "it anew from its .gz file"
            )
    expected = dict(dataset_class.resources)
    for file_name, md5 in expected.items():
        path = folder / file_name
        if path.exists() and _md5(path) != md5:
            return CorruptDatasetError(
                f"{path} is corrupt or truncated (md5 {_md5(path)}, expected {md5}) and a fresh "
                f"copy could not be downloaded; replace it with the official file, or {how_to_fix}"
            )
    if not all(path.exists() for path in extracted):
        if (root / next(iter(expected))).exists():  # the raw folder was given as the root
            how_to_fix += f"; {root} holds them itself, so ROOT is {root.parent.parent}"
        return DatasetNotFoundError(
            f"{dataset_class.__name__} is not in {folder} and could not be downloaded (offline?). "
            f"It needs the four official files {', '.join(expected)}; {how_to_fix}"
        )
    reason = first_line(error)
    return DatasetNotFoundError(
        f"could not prepare {dataset_class.__name__} in {folder}: {reason}; {how_to_fix}"
    )


def _check_regular_files(folder: Path, split: str, dataset_class: type) -> None:
    """Refuse a data file that a folder, a FIFO or a device stands in for, or one larger than
    any official file, before torchvision opens it: it reads a file whole, and a FIFO would
    block it forever."""
    archives = [folder / name for name, _ in dataset_class.resources]
    for path in [*_extracted_files(folder, split), *archives]:
        try:
            info = path.stat()
        except OSError:  # not there: torchvision downloads or extracts it
            continue
        if not stat.S_ISREG(info.st_mode):
            raise CorruptDatasetError(
                f"{path} is not a regular file; remove it and run again, so that the official "
                "file is downloaded or extracted in its place"
            )
        if info.st_size > MAX_DATA_FILE_BYTES:
            raise CorruptDatasetError(
                f"{path} is {info.st_size:,} bytes, more than any official file "
                f"(at most {MAX_DATA_FILE_BYTES:,}); delete it and run again"
            )


def _raw_folder(root: Path, dataset_class: type) -> Path:
    """Where torchvision keeps a dataset's files under ``root``."""
    return root / dataset_class.__name__ / "raw"


def _extracted_files(folder: Path, split: str) -> list[Path]:
    prefix = "train" if split == "train" else "t10k"
    return [folder / f"{prefix}-images-idx3-ubyte", folder / f"{prefix}-labels-idx1-ubyte"]


def _is_complete_idx(path: Path) -> bool:
    """Whether ``path`` is a uint8 IDX file whose size matches the sizes in its header (read
    from the header alone)."""
    head = read_head(path, 16)
    if len(head) < 4 or head[:3] != b"\x00\x00\x08" or not 1 <= head[3] <= 3:
        return False
    header_bytes = 4 + 4 * head[3]
    sizes = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(head[3])]
    return path.stat().st_size == header_bytes + math.prod(sizes)


def _check_contents(images: Tensor, targets: Tensor, num_classes: int, folder: Path) -> None:
    """Catch files that parse but do not hold a labelled set of 28x28 images."""
    problem = None
    if images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
        problem = f"images have shape {tuple(images.shape)}, not (N, 28, 28)"
    elif len(images) != len(targets):
        problem = f"{len(images)} images but {len(targets)} labels"
    elif len(targets) and not 0 <= int(targets.min()) <= int(targets.max()) < num_classes:
        problem = f"labels outside 0..{num_classes - 1}"
    if problem:
        raise CorruptDatasetError(f"the files in {folder} do not fit together: {problem}")


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
