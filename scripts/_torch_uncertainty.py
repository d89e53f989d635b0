"""What the benchmarks that run TorchUncertainty beside the zoo share: finding it, and
quieting Lightning. Imported by scripts in this folder, which Python puts on the path."""

from __future__ import annotations

import logging
import warnings

TU_INSTALL = "pip install 'uncertainty-zoo[bench]'"  # torch-uncertainty, its CPU extras


def torch_uncertainty_version() -> str | None:
    """The installed torch-uncertainty's version, or None (with a note why) to skip TU."""
    try:
        import torch_uncertainty.routines  # noqa: F401
        from lightning import __version__ as lightning_version
    except (ImportError, NameError) as error:  # 0.13.0 raises NameError without scikit-learn
        print(f"TU half skipped: {error}; install it with {TU_INSTALL}")
        return None
    from importlib.metadata import version

    return f"torch-uncertainty {version('torch-uncertainty')}, lightning {lightning_version}"


def quiet_lightning(*messages: str) -> None:
    """Silence Lightning's per-run banners, and warnings that say nothing about the timing:
    the common ones, and those matching ``messages`` (regular expressions)."""
    import lightning.pytorch  # noqa: F401  (it sets its logger's level on import)

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    for message in (r".*does not have many workers", r".*LeafSpec", *messages):
        warnings.filterwarnings("ignore", message=message)
