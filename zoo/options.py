"""The choices and defaults that users pick from, importable without torch.

The command line builds its help from these, and ``zoo --help`` must stay fast.
"""

from __future__ import annotations

DATASET_NAMES = ("mnist", "fashion_mnist")  # what zoo.data loads
DATASET_TITLES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
DATASET_HUB_IDS = {"mnist": "ylecun/mnist", "fashion_mnist": "zalando-datasets/fashion_mnist"}
TRAINING_DATASETS = ("mnist",)  # what recipes train on; zoo.evaluate tests on its test split
OOD_DATASETS = ("fashion_mnist",)
DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")
OOD_SCORES = ("entropy", "msp", "mi")
# what zoo.shift does to the MNIST test set, step by step
SHIFT_KINDS = ("rotation", "translation", "corruption")
DEFAULT_SAMPLES = 16
SEED_RANGE = (0, 2**64 - 1)  # what torch.manual_seed takes, without negative aliases
DEFAULT_BATCH_SIZE = 1000

# Set by `zoo train --nproc` for the processes it starts: their launcher says what Ctrl-C left.
LAUNCHED_BY_NPROC_VARIABLE = "ZOO_LAUNCHED_BY_NPROC"
