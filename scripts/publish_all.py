"""Publish the official checkpoints to the Hugging Face Hub, and record where they went.

    scripts/publish_all [--org uncertainty-zoo] [--token TOKEN] [--only NAME ...]

Each shipped checkpoint NAME goes to the repository ORG/NAME (for example
uncertainty-zoo/mc_dropout_lenet.mnist) in one commit: its weights byte for byte, config.json,
the model card, its recipe and its evaluation report. As each push lands, the repository id and
the commit it made are written into the checkpoint's registry entry (zoo/checkpoints/index.json),
from which `zoo.load("ORG/NAME@COMMIT")` then also checks the registry's sha256, and its card in
model_cards/ is regenerated, now with the `zoo.from_pretrained` line. Commit both afterwards.

The token comes from --token, else HF_TOKEN, else the `hf auth login` token; it needs write
access to ORG. HF_ENDPOINT chooses another Hub.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from zoo.atomic import atomic_write_bytes
from zoo.errors import ZooError
from zoo.publishing import SOURCE_ROOT, push_to_hub, write_model_card
from zoo.weights import CHECKPOINTS_DIR, INDEX_NAME, all_weights

DEFAULT_ORG = "uncertainty-zoo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--org", default=DEFAULT_ORG, help=f"[default: {DEFAULT_ORG}]")
    parser.add_argument("--token", help="[default: $HF_TOKEN, else the saved login]")
    parser.add_argument("--only", action="append", metavar="NAME", help="publish only NAME")
    parser.add_argument("--index", type=Path, default=CHECKPOINTS_DIR / INDEX_NAME)
    parser.add_argument("--cards", type=Path, default=SOURCE_ROOT / "model_cards")
    arguments = parser.parse_args()
    names = arguments.only or list(all_weights())
    unknown = sorted(set(names) - set(all_weights()))
    if unknown:
        sys.exit(f"error: no shipped checkpoint {', '.join(unknown)}; see `zoo list`")
    try:
        for name in names:
            publish(name, arguments.org, arguments.token, arguments.index, arguments.cards)
    except ZooError as error:
        sys.exit(f"error: {error}")


def publish(name: str, org: str, token: str | None, index_path: Path, cards: Path) -> None:
    """Push ``name`` to ``org/name``, then record the commit in the index and the card.

    What is pushed has been checked against the registry's sha256 (`zoo.publishing`).
    """
    entry = all_weights()[name]
    result = push_to_hub(name, f"{org}/{name}", token=token)
    hub = {"repo_id": result.repo_id, "revision": result.commit}
    _record(index_path, name, hub)
    write_model_card(dataclasses.replace(entry, hub=hub), SOURCE_ROOT, cards)
    print(result)


def _record(index_path: Path, name: str, hub: dict[str, str]) -> None:
    index = json.loads(index_path.read_text(encoding="utf-8"))
    index[name]["hub"] = hub
    text = json.dumps(index, indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(index_path, text.encode("utf-8"))


if __name__ == "__main__":
    main()
