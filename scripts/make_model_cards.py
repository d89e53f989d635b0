"""Regenerate every model card in model_cards/ from the registry and the recipes.

    python scripts/make_model_cards.py

Cards are also written by scripts/add_checkpoint.py; run this after changing zoo/cards.py.
The test suite fails while a committed card differs from the generated one.
"""

from __future__ import annotations

from pathlib import Path

from zoo.publishing import write_model_card
from zoo.weights import all_weights

REPOSITORY = Path(__file__).resolve().parent.parent


def main() -> None:
    for entry in all_weights().values():
        path = write_model_card(entry, REPOSITORY)
        print(f"wrote {path.relative_to(REPOSITORY)}")


if __name__ == "__main__":
    main()
