"""Training from recipes: `read_recipe` checks a TOML recipe, `train` runs it."""

from zoo.training.recipe import Recipe, parse_recipe, read_recipe
from zoo.training.trainer import train

__all__ = ["Recipe", "parse_recipe", "read_recipe", "train"]
