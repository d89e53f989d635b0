"""`zoo push`, the Hub ids of `zoo eval`, `zoo info` and `zoo predict`, and scripts/publish_all,
against the Hub look-alike of tests/hub_server.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
import torch

import zoo
from zoo import weights
from zoo.pretrained import WEIGHTS_NAME

from .conftest import HUB_TOKEN, REPOSITORY
from .hub_server import HubServer
from .test_cli_eval import run
from .test_cli_predict import digit, save_image

REPO = "zoo-test/lenet"


def run_process(*arguments: object, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """A real process, with the Hub client's debug logging on, so that a leaked token shows."""
    result = subprocess.run(
        [sys.executable, *(str(argument) for argument in arguments)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=os.environ | {"HF_HUB_VERBOSITY": "debug"} | (env or {}),
    )
    return result.returncode, result.stdout, result.stderr


def files_containing(root: Path, secret: str) -> list[Path]:
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes()
    ]


def test_zoo_push_prints_the_commit_and_never_the_token(hub: HubServer, tmp_path: Path) -> None:
    arguments = ["push", "lenet.mnist", "--repo-id", REPO, "--token", HUB_TOKEN]
    code, out, err = run_process("-m", "zoo.cli", *arguments, "--message", "Publish lenet")
    assert code == 0, err
    commit = hub.commits(REPO)[-1]
    assert out.splitlines() == [
        f"pushed {REPO}@{commit} (branch main)",
        f"{hub.url}/{REPO}/commit/{commit}",
    ]
    assert HUB_TOKEN not in out + err
    assert files_containing(tmp_path, HUB_TOKEN) == []
    posts = [request for request in hub.requests if request.method == "POST"]
    assert all(request.headers["authorization"] == f"Bearer {HUB_TOKEN}" for request in posts)
    assert all(HUB_TOKEN.encode() not in request.body for request in hub.requests)


def test_zoo_eval_info_and_predict_take_a_hub_id(
    hub: HubServer, tiny_data_root: Path, tmp_path: Path
) -> None:
    code, out, err = run("push", "mc_dropout_lenet.mnist", "--repo-id", REPO, "--token", HUB_TOKEN)
    assert code == 0, err
    commit = hub.commits(REPO)[-1]
    code, out, err = run("eval", REPO, "--data-dir", tiny_data_root, "--samples", "2")
    assert code == 0, err
    expected_sha = weights.all_weights()["mc_dropout_lenet.mnist"].sha256
    assert out.startswith(f"{REPO} (mc_dropout_lenet, weights sha256 {expected_sha[:12]})")
    code, out, err = run("info", REPO)
    assert code == 0, err
    assert f"{REPO} @ {commit}" in out and "acc 0.99" in out
    assert f"recipe.toml in {REPO}@{commit}" in out
    image = save_image(tmp_path / "digit.png", digit())
    code, out, err = run("predict", f"{REPO}@{commit}", image, "--json")
    assert code == 0, err
    assert json.loads(out)[0]["image"] == str(image)


def test_zoo_info_works_offline_from_the_cache(hub: HubServer) -> None:
    code, _, err = run("push", "lenet.mnist", "--repo-id", REPO, "--token", HUB_TOKEN)
    assert code == 0, err
    run("info", REPO)
    hub.set_down(True)
    code, out, err = run_process("-m", "zoo.cli", "info", REPO, env={"HF_HUB_OFFLINE": "1"})
    assert code == 0, err
    assert f"{REPO} @ {hub.commits(REPO)[-1]}" in out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["push", "lenet.mnist", "--repo-id", "lenet"], "--repo-id must be a Hub repository id"),
        (["push", "lenet.mnist", "--repo-id", REPO], "the Hub needs a token"),
        (["push", "lenet.mnist", "--repo-id", REPO, "--token", "hf_bad"], "refused the token"),
        (["push", "nope.mnist", "--repo-id", REPO], "is not a registered model"),
        (["push", REPO, "--repo-id", "zoo-test/copy"], "no folder zoo-test/lenet here"),
        (["eval", "zoo-test/missing"], "zoo-test/missing: no such repository"),
        (["info", f"{REPO}@v2"], f"{REPO}@v2: no such repository"),
    ],
)
def test_hub_failures_are_one_line_errors_with_exit_code_2(
    hub: HubServer, arguments: list[str], message: str
) -> None:
    code, _, err = run(*arguments)
    assert code == 2 and err.startswith("Error: ") and message in err, err
    assert "hf_bad" not in err


def test_publish_all_pushes_the_bundled_bytes_and_records_the_commits(
    hub: HubServer, tmp_path: Path
) -> None:
    index = tmp_path / "index.json"
    shutil.copyfile(weights.CHECKPOINTS_DIR / weights.INDEX_NAME, index)
    cards = tmp_path / "cards"
    cards.mkdir()
    script = REPOSITORY / "scripts" / "publish_all.py"
    arguments = ["--org", "zoo-test", "--token", HUB_TOKEN, "--index", index, "--cards", cards]
    code, out, err = run_process(script, *arguments)
    assert code == 0, err
    assert HUB_TOKEN not in out + err
    recorded = json.loads(index.read_text())
    for name, entry in weights.all_weights().items():
        repo_id = f"zoo-test/{name}"
        commit = hub.commits(repo_id)[-1]
        assert recorded[name]["hub"] == {"repo_id": repo_id, "revision": commit}
        assert f"pushed {repo_id}@{commit}" in out
        published = hub.files(repo_id, commit)[WEIGHTS_NAME]
        assert hashlib.sha256(published).hexdigest() == entry.sha256
        assert published == (entry.folder / WEIGHTS_NAME).read_bytes()
        card = (cards / f"{name}.md").read_text()
        assert card == hub.files(repo_id, commit)["README.md"].decode()
        assert f'zoo.from_pretrained("{repo_id}")' in card
        loaded, bundled = zoo.load(f"{repo_id}@{commit}").state_dict(), zoo.load(name).state_dict()
        assert all(torch.equal(loaded[key], value) for key, value in bundled.items())
    assert weights.all_weights() == weights.all_weights.__wrapped__()  # the package is untouched


def write_log(folder: Path, **changes: object) -> None:
    record = {
        "epoch": 1, "loss": 1.0, "elapsed_seconds": 60.0, "device": "cpu (2 threads)",
        "hardware": "a CPU", "torch": "2.14.1", "amp": None, "compiled": False,
    } | changes  # fmt: skip
    (folder / "train_log.jsonl").write_text(json.dumps(record) + "\n")


def test_info_shows_text_from_a_hub_repository_escaped(hub: HubServer, tmp_path: Path) -> None:
    folder = zoo.create_model("lenet").save_pretrained(tmp_path / "run")
    write_log(folder, hardware="\x1b]0;owned\x07\x1b[2J CPU\nforged: line")
    code, _, err = run("push", folder, "--repo-id", REPO, "--token", HUB_TOKEN)
    assert code == 0, err
    code, out, err = run("info", REPO)
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;owned\\x07\\x1b[2J CPU\\nforged: line" in out
    assert not any(line.startswith("forged") for line in out.splitlines())


@pytest.mark.parametrize(
    ("log", "message"),
    [
        ({"elapsed_seconds": "soon"}, "'elapsed_seconds' must be a number"),
        ({"compiled": "no"}, "'compiled' must be a JSON bool"),
        ([1, 2], "line 1 is not a zoo train record: not a JSON object"),
    ],
)
def test_a_folder_with_a_hostile_log_is_not_pushed(
    log: object, message: str, hub: HubServer, tmp_path: Path
) -> None:
    folder = zoo.create_model("lenet").save_pretrained(tmp_path / "run")
    if isinstance(log, dict):
        write_log(folder, **log)
    else:
        (folder / "train_log.jsonl").write_text(json.dumps(log) + "\n")
    code, _, err = run("push", folder, "--repo-id", REPO, "--token", HUB_TOKEN)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert hub.requests == []


@pytest.mark.parametrize("command", ["info", "eval", "predict"])
def test_a_revision_that_climbs_out_is_a_one_line_error(command: str, hub: HubServer) -> None:
    arguments = [command, f"{REPO}@../../../../tmp/x"] + (["x.png"] if command == "predict" else [])
    code, _, err = run(*arguments)
    assert code == 2 and err.startswith("Error: revision '../../../../tmp/x' is not a git ref")
    assert len(err.strip().splitlines()) == 1
    assert hub.requests == []


def write_report(folder: Path, change: object) -> None:
    """Give ``folder`` an eval.json of its weights, with ``change(report)`` applied."""
    pinned = json.loads((folder / "config.json").read_text())["weights_sha256"]
    report = {
        "metrics": {"classification": {"acc": 0.5}},
        "provenance": {
            "weights_sha256": pinned, "dataset": {"name": "mnist", "size": 50},
            "ood_dataset": None, "ood_score": None, "samples": 2, "seed": 0,
            "versions": {"zoo": "0.1.0", "torch": "2.14.1"},
        },
    }  # fmt: skip
    change(report)  # type: ignore[operator]
    (folder / "eval.json").write_text(json.dumps(report).replace('"NAN"', "NaN"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda report: report["provenance"].pop("dataset"), "provenance field 'dataset'"),
        (lambda report: report["provenance"]["dataset"].update(name="evil"), "'dataset'"),
        (lambda report: report["metrics"]["classification"].update(acc="NAN"), "metric acc is"),
        (lambda report: report["metrics"]["classification"].update(nll=True), "metric nll is"),
        (lambda report: report["metrics"].update(ood={"auroc": 0.9}), "'ood_dataset'"),
        (lambda report: report["provenance"]["versions"].update(zoo="1\n2"), "'versions'"),
    ],
)
def test_a_folder_whose_report_the_zoo_did_not_write_is_not_pushed(
    change: object, message: str, hub: HubServer, tmp_path: Path
) -> None:
    folder = zoo.create_model("lenet").save_pretrained(tmp_path / "run")
    write_report(folder, change)
    code, _, err = run("push", folder, "--repo-id", REPO, "--token", HUB_TOKEN)
    assert code == 2 and "is not a zoo eval report" in err and message in err
    assert hub.requests == []


def test_a_socks_proxy_the_client_cannot_use_is_a_clear_error(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoo.create_model("lenet").push_to_hub(REPO, token=HUB_TOKEN)
    close_session = getattr(huggingface_hub.utils, "close_session", None)  # >= 1.0
    if close_session is None:
        pytest.skip("this huggingface_hub keeps no session to rebuild with the proxy")
    with monkeypatch.context() as patch:
        patch.setenv("ALL_PROXY", "socks5://127.0.0.1:9")
        patch.setenv("NO_PROXY", "")
        close_session()  # the next request builds a client that reads the proxy settings
        code, _, err = run("info", REPO)
    close_session()
    assert code == 2 and err.startswith(f"Error: {REPO}: cannot reach the Hub")
