"""Training from recipes: `read_recipe` checks a TOML recipe, `train` runs it.

The names load lazily, so that reading a run's log (`zoo.training.log`) does not import the
trainer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.training.recipe import Recipe, parse_recipe, read_recipe
    from zoo.training.trainer import check_distributable, member_seed, train

__all__ = ["Recipe", "check_distributable", "member_seed", "parse_recipe", "read_recipe", "train"]


def __getattr__(name: str) -> Any:
    if name in ("Recipe", "parse_recipe", "read_recipe"):
        from zoo.training import recipe

        return getattr(recipe, name)
    if name in ("check_distributable", "member_seed", "train"):
        from zoo.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'zoo.training' has no attribute {name!r}")
