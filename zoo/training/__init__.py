"""Training from recipes: `read_recipe` checks a TOML recipe, `train` runs it.

The names load lazily, so that reading a run's log (`zoo.training.log`) does not import the
trainer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.training.recipe import Recipe, parse_recipe, read_recipe
    from zoo.training.trainer import train

__all__ = ["Recipe", "parse_recipe", "read_recipe", "train"]


def __getattr__(name: str) -> Any:
    if name in ("Recipe", "parse_recipe", "read_recipe"):
        from zoo.training import recipe

        return getattr(recipe, name)
    if name == "train":
        from zoo.training.trainer import train

        return train
    raise AttributeError(f"module 'zoo.training' has no attribute {name!r}")
