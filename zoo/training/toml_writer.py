"""Writing TOML: the recipe a run used, as ``recipe.toml``, which `zoo.training.read_recipe`
reads back to the same recipe. The standard library reads TOML but does not write it; recipes
need only strings, numbers, booleans, lists and nested tables."""

from __future__ import annotations

import json
import math
from typing import Any


def dump_toml(table: dict[str, Any]) -> str:
    """Write nested dicts of strings, numbers, booleans and lists as TOML.

    Floats are written with ``repr``, which reads back to the same float.
    """
    lines = _dump_table(table, [])
    return "\n".join(lines).strip() + "\n"


def _dump_table(table: dict[str, Any], path: list[str]) -> list[str]:
    scalars = [(key, value) for key, value in table.items() if not isinstance(value, dict)]
    tables = [(key, value) for key, value in table.items() if isinstance(value, dict)]
    lines = [f"[{'.'.join(path)}]"] if path else []
    lines += [f"{key} = {_toml_value(value)}" for key, value in scalars]
    for key, value in tables:
        lines += ["", *_dump_table(value, [*path, key])]
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
