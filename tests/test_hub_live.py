"""The real Hugging Face Hub, opt-in: these tests run only when ZOO_HUB_LIVE_TOKEN holds a write
token. ZOO_HUB_LIVE_NAMESPACE picks the user or organisation to push to (default: the token's
user). Each test pushes to a new private repository and deletes it afterwards.

    ZOO_HUB_LIVE_TOKEN=hf_... scripts/test tests/test_hub_live.py
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi

import zoo

LIVE_TOKEN = os.environ.get("ZOO_HUB_LIVE_TOKEN")

pytestmark = [
    pytest.mark.live_hub,
    pytest.mark.skipif(not LIVE_TOKEN, reason="set ZOO_HUB_LIVE_TOKEN to test the real Hub"),
]


@pytest.fixture
def live_repo() -> Iterator[str]:
    api = HfApi(token=LIVE_TOKEN)
    namespace = os.environ.get("ZOO_HUB_LIVE_NAMESPACE") or api.whoami()["name"]
    repo_id = f"{namespace}/uncertainty-zoo-live-test-{secrets.token_hex(4)}"
    yield repo_id
    api.delete_repo(repo_id, missing_ok=True)


def test_push_and_load_back_from_the_real_hub(live_repo: str, tmp_path: Path) -> None:
    model = zoo.load("mc_dropout_lenet.mnist")
    result = zoo.push_to_hub("mc_dropout_lenet.mnist", live_repo, private=True, token=LIVE_TOKEN)
    assert result.url.startswith("https://") and len(result.commit) == 40
    loaded = zoo.from_pretrained(
        live_repo, revision=result.commit, token=LIVE_TOKEN, cache_dir=tmp_path / "hf"
    )
    images = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    torch.manual_seed(0)
    expected = model.predict(images, samples=4).sample_probs
    torch.manual_seed(0)
    assert torch.equal(loaded.predict(images, samples=4).sample_probs, expected)
    info = HfApi(token=LIVE_TOKEN).model_info(live_repo, revision=result.commit)
    names = {sibling.rfilename for sibling in info.siblings or []}
    assert {"model.safetensors", "config.json", "README.md", "recipe.toml", "eval.json"} <= names
