"""The errors uncertainty-zoo raises on purpose.

Every one derives from `ZooError`, so `except zoo.ZooError` catches all of them. Where a
built-in exception fits too (`ValueError` for a bad value, `LookupError` for an unknown name),
the error derives from it as well, so code written against the built-ins keeps working.
"""

from __future__ import annotations

from pathlib import Path

from zoo.text import escaped


class ZooError(Exception):
    """Base class of every error that uncertainty-zoo raises on purpose."""


class ZooWarning(UserWarning):
    """Something the user should know that does not stop the work: a training run resumed on
    another device, say. ``zoo`` commands print it as one "Warning:" line."""


class UnknownModelError(ZooError, LookupError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # LookupError would quote the message like a dict key
        return str(self.args[0]) if self.args else ""


class DuplicateModelError(ZooError, ValueError):
    """A second registration under a name that is already taken."""


class ModelConfigError(ZooError, ValueError):
    """Constructor arguments that cannot build the requested model."""


class InvalidInputError(ZooError, ValueError):
    """Arguments a call cannot take: images, sample counts, a name that is not a string, or a
    model whose outputs on them are not finite."""


class CheckpointError(ZooError):
    """A saved model that cannot be loaded or written; `path` names the file at fault."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path, self.detail = Path(path), message
        super().__init__(escaped(f"{self.path}: {message}"))  # a file's text stays on one line


class ConfigFileError(CheckpointError):
    """A config.json that is missing, not JSON, or describes no model the zoo can build."""


class WeightsFileError(CheckpointError):
    """A weights file that is missing, truncated, not safetensors, or a pickle."""


class ChecksumMismatchError(WeightsFileError):
    """A weights file whose sha256 differs from the one it is pinned to."""


class StateDictMismatchError(CheckpointError):
    """Weights whose tensor names or shapes do not fit the model that the config builds."""


class DatasetError(ZooError):
    """Evaluation data that cannot be found, downloaded or read."""


class DatasetNotFoundError(DatasetError):
    """Dataset files that are missing and could not be downloaded."""


class CorruptDatasetError(DatasetError):
    """A dataset file that is damaged: a wrong checksum, a truncated file."""


class BlankImageError(InvalidInputError):
    """An image with no digit in it: one level, or too little contrast between ink and paper."""


class DeviceError(ZooError, ValueError):
    """A device name that is unknown, or a device this machine does not have."""


class PretrainedWeightsError(ZooError, LookupError):
    """A registered model name with no pretrained weights to load."""


class MissingExtraError(ZooError, ImportError):
    """A feature whose optional dependencies are not installed."""


class ImageFileError(ZooError, ValueError):
    """An image file that cannot be read or decoded."""


class ImageTooLargeError(ImageFileError):
    """An image file, or the image in it, over the size limits of `zoo.limits`."""


class NoDigitError(ImageFileError):
    """An image file that holds no digit: one level, or too little contrast."""


class OutputFileError(ZooError, OSError):
    """A result file (a report, a plot, a model) that cannot be written."""


class ListenError(ZooError, OSError):
    """A server that cannot listen where asked: a port in use, an unknown address."""


class RecipeError(ZooError, ValueError):
    """A training recipe with an unknown key, a wrong type or an invalid value."""


class TrainingStateError(ZooError):
    """A training run that cannot start or resume: its folder or checkpoint is not usable."""


class TrainingDivergedError(TrainingStateError):
    """A training run whose loss became NaN or infinite; the last checkpoint is kept."""


class TrainingProcessError(ZooError):
    """A process of a run on several processes failed, was killed or lost the others; torchrun
    stopped the rest. ``signal_number``: the signal that stopped a process, or the launcher
    itself when ``launcher_stopped``; None when a process failed of itself."""

    def __init__(
        self, message: str, signal_number: int | None = None, launcher_stopped: bool = False
    ) -> None:
        super().__init__(message)
        self.signal_number = signal_number
        self.launcher_stopped = launcher_stopped


class HubError(ZooError):
    """A model that cannot be downloaded from, or published to, the Hugging Face Hub.

    `repo_id` and `revision` (None for the default branch) name what was asked for.
    """

    def __init__(self, repo_id: str, revision: str | None, message: str) -> None:
        self.repo_id, self.revision = repo_id, revision
        where = repo_id if revision is None else f"{repo_id}@{revision}"
        super().__init__(escaped(f"{where}: {message}"))  # and so does a Hub's answer


class HubRepositoryNotFoundError(HubError, LookupError):
    """A repository that does not exist, or that is private and the token cannot read."""

    __str__ = UnknownModelError.__str__


class HubRevisionNotFoundError(HubError, LookupError):
    """A branch, tag or commit that the repository does not have."""

    __str__ = UnknownModelError.__str__


class HubFileNotFoundError(HubError, LookupError):
    """A file, such as model.safetensors, that the repository does not hold at that revision."""

    __str__ = UnknownModelError.__str__


class HubOfflineError(HubError):
    """Offline mode (HF_HUB_OFFLINE or local_files_only) and the files are not in the cache."""


class HubConnectionError(HubError):
    """The Hub cannot be reached, or it answered with an error, and nothing usable is cached."""


class HubAuthenticationError(HubError):
    """A write without a token, or a token the Hub refuses."""
