"""The README's Python examples run as written."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

import zoo

from .conftest import HUB_TOKEN
from .hub_server import HubServer

README = Path(__file__).resolve().parent.parent / "README.md"
SCRIPTS = README.parent / "scripts"


def test_readme_python_examples_run(
    tmp_path: Path, tiny_data_root: Path, monkeypatch: pytest.MonkeyPatch, hub: HubServer
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 2
    assert len(blocks[0].strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_DATA_DIR", str(tiny_data_root))
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)  # the examples' Hub is the test's look-alike
    zoo.create_model("mc_dropout_lenet").push_to_hub("my-org/my-model")
    zoo.create_model("mc_dropout_lenet").push_to_hub("my-org/my-model", revision="v1")
    hub.clear_requests()
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert (tmp_path / "my-model" / "model.safetensors").exists()
    assert (tmp_path / "my-model-eval.json").exists()
    assert namespace["prediction"].sample_probs.shape == (8, 16, 10)  # type: ignore[attr-defined]
    assert namespace["result"].commit == hub.commits("my-org/my-model")[-1]  # type: ignore[attr-defined]
    assert any(request.path.endswith("/model.safetensors") for request in hub.requests)


def test_the_readme_says_where_the_weights_are_published() -> None:
    from zoo.weights import all_weights

    text = README.read_text()
    published = [entry.hub["repo_id"] for entry in all_weights().values() if entry.hub["repo_id"]]
    assert ("not published on the Hugging Face Hub yet" in text) == (not published)
    for repo_id in published:
        assert f"`{repo_id}`" in text


def test_the_checkpoint_tables_in_the_docs_are_generated_from_the_registry() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_readme_table", SCRIPTS / "make_readme_table.py"
    )
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    table = script.checkpoint_table()
    from zoo.report import flat_metrics, format_metric
    from zoo.weights import all_weights

    for name, entry in all_weights().items():  # a row per checkpoint, with its own figures
        row = re.search(rf"^\| `{re.escape(name)}` \|(.*)$", table, flags=re.MULTILINE)
        assert row, name
        metrics = flat_metrics(entry.metrics)
        expected = [format_metric(key, metrics[key]) for key in ("acc", "nll", "ece", "auroc")]
        assert [cell.strip() for cell in row.group(1).split("|")][:4] == expected
    shift = script.shift_table()
    for name, entry in all_weights().items():  # the means of the recorded steps
        row = re.search(rf"^\| `{re.escape(name)}` \|(.*)$", shift, flags=re.MULTILINE)
        assert row, name
        expected = []
        for kind in ("rotation", "translation", "corruption"):
            shifted = entry.shift[kind]["steps"][1:]
            for key in ("acc", "nll", "ece"):
                mean = sum(step[key] for step in shifted) / len(shifted)
                expected.append(format_metric(key, mean))
        assert [cell.strip() for cell in row.group(1).split("|")][:9] == expected
    for document in script.DOCUMENTS:
        text = document.read_text()
        assert script.generated(document, text) == text, "run scripts/make_readme_table.py"
    assert "<!-- shift: begin -->" in script.README.read_text()


def test_the_readme_tables_the_limits_the_code_enforces() -> None:
    from zoo import limits

    text = README.read_text()
    section = text[text.index("## What the zoo refuses") :]
    section = section[: section.index("\n## ", 1)]
    mebibytes = {
        limits.MAX_IMAGE_FILE_BYTES: "128 MiB",
        limits.MAX_CONFIG_BYTES: "1 MiB",
        limits.MAX_WEIGHTS_BYTES: "256 MiB",
        limits.MAX_LOG_BYTES: "16 MiB",
        limits.MAX_RECIPE_BYTES: "1 MiB",
    }
    for size, written in mebibytes.items():
        assert size == int(written.split()[0]) << 20 and written in section
    counts = [
        limits.MAX_SAMPLES,
        limits.MAX_EVALUATION_ROWS,
        limits.MAX_TRAINING_ROWS,
        limits.MAX_IMAGE_SIDE,
        limits.MAX_IMAGE_PIXELS,
        limits.MAX_CLASSES,
        limits.MAX_LABEL_LENGTH,
        limits.MAX_REVISION_LENGTH,
        limits.MAX_EPOCHS,
        limits.MAX_NAME_LENGTH,
    ]
    for count in counts:
        assert f"{count:,}" in section, count
    assert f"`lr` above {limits.MAX_LEARNING_RATE:g}" in section
    assert f"`weight_decay` above {limits.MAX_WEIGHT_DECAY:g}" in section
    assert f"at most {limits.HUB_CONNECT_TIMEOUT_S:g} s" in section
    assert f"outside {1 / limits.MAX_NORMALISATION:g} to {limits.MAX_NORMALISATION:,.0f}" in section
    assert (
        f"temperature outside {1 / limits.MAX_TEMPERATURE:g} to {limits.MAX_TEMPERATURE:g}"
        in section
    )
