"""The choices and defaults that users pick from, importable without torch.

The command line builds its help from these, and ``zoo --help`` must stay fast.
"""

from __future__ import annotations

DATASET_NAMES = ("mnist", "fashion_mnist")  # what zoo.data loads
OOD_DATASETS = ("fashion_mnist",)
DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")
OOD_SCORES = ("entropy", "msp", "mi")
DEFAULT_SAMPLES = 16
SEED_RANGE = (0, 2**64 - 1)  # what torch.manual_seed takes, without negative aliases
DEFAULT_BATCH_SIZE = 1000
