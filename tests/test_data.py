"""Loading MNIST and FashionMNIST: the official files, tiny IDX files, and every way to fail."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from zoo.data import DEFAULT_DATA_DIR, data_root, load_dataset
from zoo.errors import CorruptDatasetError, DatasetNotFoundError, InvalidInputError

from .conftest import write_idx, write_idx_dataset, write_random_data_root

# From the data's README: test-set label counts for the digits 0-9, and the md5s of the
# uncompressed official test files.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TEST_MD5S = {
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
GZ_NAMES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


def test_the_official_mnist_test_set_loads_whole_as_uint8(data_root: Path) -> None:
    mnist = load_dataset("mnist", "test", data_root)
    assert mnist.images.shape == (10_000, 28, 28) and mnist.images.dtype == torch.uint8
    assert mnist.targets.dtype == torch.int64
    assert torch.bincount(mnist.targets).tolist() == MNIST_TEST_COUNTS
    assert mnist.file_md5s == MNIST_TEST_MD5S
    assert len(mnist) == 10_000 and mnist.name == "mnist" and mnist.split == "test"


def test_the_official_fashion_mnist_test_set_has_1000_images_per_class(data_root: Path) -> None:
    fashion = load_dataset("fashion_mnist", "test", data_root)
    assert fashion.images.shape == (10_000, 28, 28)
    assert torch.bincount(fashion.targets).tolist() == [1000] * 10


def test_tiny_idx_files_load_exactly(tmp_path: Path) -> None:
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    labels = torch.tensor([3, 1, 4, 1, 5], dtype=torch.uint8)
    write_idx_dataset(tmp_path, "MNIST", images, labels)
    loaded = load_dataset("mnist", "test", tmp_path)
    assert torch.equal(loaded.images, images)
    assert torch.equal(loaded.targets, labels.long())
    assert set(loaded.file_md5s) == {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}


def test_the_data_root_comes_from_the_argument_then_the_environment_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    assert data_root() == tmp_path / "home" / DEFAULT_DATA_DIR.relative_to("~")
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "from-env"))
    assert data_root() == tmp_path / "from-env"
    assert data_root(tmp_path / "from-argument") == tmp_path / "from-argument"


def test_missing_files_offline_name_the_folder_the_files_and_the_option(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as raised:
        load_dataset("mnist", "test", tmp_path)
    message = str(raised.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert all(name in message for name in GZ_NAMES)
    assert "--data-dir" in message


def test_a_raw_folder_given_as_the_root_gets_the_root_suggested(
    data_root: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    shutil.copyfile(data_root / "MNIST" / "raw" / GZ_NAMES[0], raw / GZ_NAMES[0])
    with pytest.raises(DatasetNotFoundError, match=f"so ROOT is {re.escape(str(tmp_path))}$"):
        load_dataset("mnist", "test", raw)


def test_a_truncated_gz_file_is_named(data_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for name in GZ_NAMES:
        shutil.copyfile(data_root / "MNIST" / "raw" / name, folder / name)
    damaged = folder / "t10k-images-idx3-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    for extracted in folder.glob("*-ubyte"):
        extracted.unlink()
    with pytest.raises(CorruptDatasetError, match=r"t10k-images-idx3-ubyte\.gz is corrupt"):
        load_dataset("mnist", "test", tmp_path)


def test_a_truncated_extracted_file_is_named(tmp_path: Path) -> None:
    images = torch.zeros(4, 28, 28, dtype=torch.uint8)
    folder = write_idx_dataset(tmp_path, "MNIST", images, torch.zeros(4, dtype=torch.uint8))
    damaged = folder / "t10k-images-idx3-ubyte"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    with pytest.raises(CorruptDatasetError, match="t10k-images-idx3-ubyte is truncated"):
        load_dataset("mnist", "test", tmp_path)


def test_images_and_labels_that_do_not_match_are_refused(tmp_path: Path) -> None:
    images, labels = torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.uint8)
    folder = write_idx_dataset(tmp_path, "MNIST", images, labels)
    write_idx(folder / "t10k-labels-idx1-ubyte", torch.tensor([1, 2, 12], dtype=torch.uint8))
    with pytest.raises(CorruptDatasetError, match="4 images but 3 labels"):
        load_dataset("mnist", "test", tmp_path)


@pytest.mark.parametrize(("name", "split"), [("cifar10", "test"), ("mnist", "validation")])
def test_unknown_datasets_and_splits_are_refused(name: str, split: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"known: mnist|one of train, test"):
        load_dataset(name, split, tmp_path)


@pytest.mark.parametrize("name", ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz"])
def test_a_folder_in_place_of_a_data_file_is_named(name: str, tmp_path: Path) -> None:
    raw = write_random_data_root(tmp_path, 5, 5, seed=0) / "MNIST" / "raw"
    (raw / name).unlink(missing_ok=True)
    (raw / name).mkdir()
    with pytest.raises(CorruptDatasetError, match=f"{name} is not a regular file"):
        load_dataset("mnist", "test", tmp_path)


def test_a_data_file_larger_than_any_official_one_is_not_read(tmp_path: Path) -> None:
    from zoo.limits import MAX_DATA_FILE_BYTES

    raw = write_random_data_root(tmp_path, 5, 5, seed=0) / "MNIST" / "raw"
    with open(raw / "t10k-images-idx3-ubyte", "r+b") as handle:
        handle.truncate(MAX_DATA_FILE_BYTES + 1)  # sparse: no disk space used
    with pytest.raises(CorruptDatasetError, match="more than any official file"):
        load_dataset("mnist", "test", tmp_path)


def test_a_data_folder_name_holding_a_nul_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="data_dir must be a folder's path"):
        load_dataset("mnist", "test", "a\0b")


def test_the_datasets_are_the_ones_the_options_name() -> None:
    from zoo.data import DATASETS
    from zoo.options import DATASET_NAMES

    assert tuple(DATASETS) == DATASET_NAMES
