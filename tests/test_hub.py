"""Publishing to and loading from the Hub, end to end: the real huggingface_hub client against
the Hub look-alike of tests/hub_server.py, a fresh cache for every test."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import huggingface_hub
import pytest
import safetensors.torch
import torch
from huggingface_hub import constants
from huggingface_hub.utils import _http

import zoo
from zoo import weights
from zoo.errors import (
    CheckpointError,
    ChecksumMismatchError,
    HubAuthenticationError,
    HubConnectionError,
    HubFileNotFoundError,
    HubOfflineError,
    HubRepositoryNotFoundError,
    HubRevisionNotFoundError,
    ModelConfigError,
)
from zoo.info import model_info
from zoo.pretrained import CONFIG_NAME, WEIGHTS_NAME

from .conftest import HUB_TOKEN, REPOSITORY, set_hub_offline
from .hub_server import HubServer

REPO = "zoo-test/lenet"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def untrained(architecture: str = "lenet", seed: int = 0) -> zoo.ZooModel:
    torch.manual_seed(seed)
    return zoo.create_model(architecture)


def same_weights(first: zoo.ZooModel, second: zoo.ZooModel) -> bool:
    state = second.state_dict()
    return all(torch.equal(value, state[name]) for name, value in first.state_dict().items())


def predictions(model: zoo.ZooModel, images: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(7)
    return model.predict(images, samples=4).sample_probs


def test_push_then_load_into_an_empty_cache_gives_the_same_predictions(
    hub: HubServer, images: torch.Tensor
) -> None:
    model = zoo.load("mc_dropout_lenet.mnist")
    result = model.push_to_hub(REPO, token=HUB_TOKEN)
    assert result.commit == hub.commits(REPO)[-1] and result.revision == "main"
    assert result.url.startswith(hub.url) and REPO in result.url
    assert not any(Path(constants.HF_HUB_CACHE).glob("**/model.safetensors"))
    loaded = zoo.from_pretrained(REPO)
    assert loaded.architecture == "mc_dropout_lenet" and not loaded.training
    assert torch.equal(predictions(loaded, images), predictions(model, images))
    cached = next(Path(constants.HF_HUB_CACHE).glob(f"**/{result.commit}/{WEIGHTS_NAME}"))
    assert cached.read_bytes() == hub.files(REPO)[WEIGHTS_NAME]


def test_a_registered_name_is_published_with_its_card_recipe_and_evaluation(
    hub: HubServer,
) -> None:
    entry = weights.all_weights()["bayesian_lenet.mnist"]
    result = zoo.push_to_hub(entry.name, REPO, token=HUB_TOKEN)
    assert len(hub.commits(REPO)) == 2  # the repository's first commit, then ONE with every file
    files = hub.files(REPO, result.commit)
    names = {".gitattributes", "model.safetensors", "config.json", "README.md"}
    assert set(files) == names | {"recipe.toml", "eval.json"}
    assert files[WEIGHTS_NAME] == (entry.folder / WEIGHTS_NAME).read_bytes()
    assert sha256(files[WEIGHTS_NAME]) == entry.sha256
    assert files[CONFIG_NAME] == (entry.folder / CONFIG_NAME).read_bytes()
    assert files["recipe.toml"] == (REPOSITORY / entry.recipe).read_bytes()
    report = json.loads(files["eval.json"])
    assert report == {"metrics": entry.metrics, "provenance": entry.evaluation}
    card = files["README.md"].decode()
    assert f'zoo.from_pretrained("{REPO}")' in card and "model-index:" in card
    assert "[`recipe.toml`](recipe.toml)" in card


def test_a_zoo_train_folder_is_published_with_its_log(
    hub: HubServer, tiny_data_root: Path, tmp_path: Path
) -> None:
    from .test_training import tiny_recipe

    run = tmp_path / "run"
    zoo.training.train(zoo.training.parse_recipe(tiny_recipe()), run, data_dir=tiny_data_root)
    result = zoo.push_to_hub(run, REPO, token=HUB_TOKEN, commit_message="tiny run")
    files = hub.files(REPO, result.commit)
    for name in ("model.safetensors", "config.json", "recipe.toml", "eval.json", "train_log.jsonl"):
        assert files[name] == (run / name).read_bytes()
    card = files["README.md"].decode()
    assert f"# {REPO}" in card and "model-index:" in card and "zoo train recipe.toml" in card
    assert "Training took" in card and "license:" not in card
    info = model_info(REPO)
    assert (
        info["training"]["epochs"] == 2
        and info["recipe"] == f"recipe.toml in {REPO}@{result.commit}"
    )


def test_a_push_replaces_every_file_of_the_previous_one(
    hub: HubServer, tiny_data_root: Path
) -> None:
    evaluated = untrained(seed=1)
    report = zoo.evaluate(evaluated, data_dir=tiny_data_root, ood=None)
    evaluated.push_to_hub(REPO, token=HUB_TOKEN, evaluation=report)
    assert "eval.json" in hub.files(REPO)
    untrained(seed=2).push_to_hub(REPO, token=HUB_TOKEN)
    assert set(hub.files(REPO)) == {".gitattributes", WEIGHTS_NAME, CONFIG_NAME, "README.md"}
    assert len(hub.commits(REPO)) == 3
    assert model_info(REPO)["metrics"] is None


def test_an_evaluation_without_ood_detection_is_published(
    hub: HubServer, tiny_data_root: Path
) -> None:
    model = untrained()
    report = zoo.evaluate(model, data_dir=tiny_data_root, ood=None)
    commit = model.push_to_hub(REPO, token=HUB_TOKEN, evaluation=report).commit
    card = hub.files(REPO, commit)["README.md"].decode()
    assert "OOD detection was not measured" in card and "AUROC" not in card
    assert json.loads(hub.files(REPO, commit)["eval.json"]) == report.to_dict()


def test_a_folder_with_an_evaluation_of_other_weights_is_refused(
    hub: HubServer, tiny_data_root: Path, tmp_path: Path
) -> None:
    folder = untrained(seed=1).save_pretrained(tmp_path / "model")
    zoo.evaluate(untrained(seed=2), data_dir=tiny_data_root, ood=None).save_json(
        folder / "eval.json"
    )
    with pytest.raises(CheckpointError, match=f"{folder / 'eval.json'}: evaluates weights"):
        zoo.push_to_hub(folder, REPO, token=HUB_TOKEN)
    assert not hub.repo_exists(REPO)


def test_a_model_without_evaluation_gets_a_card_that_says_so(hub: HubServer) -> None:
    result = untrained().push_to_hub(REPO, token=HUB_TOKEN)
    files = hub.files(REPO, result.commit)
    assert set(files) == {".gitattributes", "model.safetensors", "config.json", "README.md"}
    card = files["README.md"].decode()
    assert "Not evaluated yet" in card and "model-index" not in card
    assert "No recipe was published" in card


def test_an_evaluation_of_other_weights_is_refused(hub: HubServer, tiny_data_root: Path) -> None:
    report = zoo.evaluate(untrained(seed=1), data_dir=tiny_data_root, ood=None)
    with pytest.raises(ModelConfigError, match="evaluation is of weights"):
        untrained(seed=2).push_to_hub(REPO, token=HUB_TOKEN, evaluation=report)
    assert not hub.repo_exists(REPO)


def test_a_second_push_keeps_the_first_revision_loadable(hub: HubServer) -> None:
    first, second = untrained(seed=1), untrained(seed=2)
    old = first.push_to_hub(REPO, token=HUB_TOKEN).commit
    new = second.push_to_hub(REPO, token=HUB_TOKEN).commit
    assert old != new
    assert same_weights(zoo.from_pretrained(REPO, revision=old), first)
    assert same_weights(zoo.load(f"{REPO}@{old}"), first)
    assert same_weights(zoo.load(REPO), second)


def test_pushing_the_same_files_again_makes_no_commit_and_says_so(hub: HubServer) -> None:
    model = untrained()
    first = model.push_to_hub(REPO, token=HUB_TOKEN)
    again = model.push_to_hub(REPO, token=HUB_TOKEN)
    assert first.changed and not again.changed and again.commit == first.commit
    assert str(again).startswith(f"nothing to push: {REPO}@{first.commit}")
    assert len(hub.commits(REPO)) == 2


def test_a_push_to_a_new_branch_creates_it(hub: HubServer) -> None:
    untrained(seed=1).push_to_hub(REPO, token=HUB_TOKEN)
    model = untrained(seed=2)
    result = model.push_to_hub(REPO, revision="dev", token=HUB_TOKEN)
    assert result.revision == "dev" and hub.branches(REPO)["dev"] == result.commit
    assert same_weights(zoo.load(f"{REPO}@dev"), model)
    assert not same_weights(zoo.load(REPO), model)


def test_after_one_download_offline_mode_loads_from_the_cache(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = untrained()
    model.push_to_hub(REPO, token=HUB_TOKEN)
    zoo.load(REPO)
    hub.set_down(True)
    assert same_weights(zoo.load(REPO, local_files_only=True), model)
    set_hub_offline(monkeypatch)
    assert same_weights(zoo.load(REPO), model)
    assert model_info(REPO)["hub"]["repo_id"] == REPO


def test_info_describes_a_hub_model_from_its_config_and_evaluation(
    hub: HubServer, tiny_data_root: Path
) -> None:
    model = untrained("mc_dropout_lenet")
    report = zoo.evaluate(model, data_dir=tiny_data_root, samples=2)
    commit = model.push_to_hub(REPO, token=HUB_TOKEN, evaluation=report).commit
    info = model_info(REPO)
    assert info["hub"] == {"repo_id": REPO, "revision": commit}
    assert info["architecture"] == "mc_dropout_lenet"
    read_back = zoo.EvaluationReport(info["metrics"], report.provenance)
    assert read_back.to_json() == report.to_json()  # to_json writes NaN as null
    assert info["weights"]["sha256"] == sha256(hub.files(REPO)[WEIGHTS_NAME])
    assert not any(Path(constants.HF_HUB_CACHE).glob(f"**/{WEIGHTS_NAME}"))  # config only


def test_a_missing_repository_names_it_and_the_token_sources(hub: HubServer) -> None:
    with pytest.raises(HubRepositoryNotFoundError, match=r"zoo-test/nothing.*no token was given"):
        zoo.load("zoo-test/nothing")


def test_a_private_repository_needs_a_token(hub: HubServer) -> None:
    model = untrained()
    model.push_to_hub(REPO, private=True, token=HUB_TOKEN)
    assert hub.is_private(REPO)
    with pytest.raises(HubRepositoryNotFoundError, match=f"{REPO}: .*private.*HF_TOKEN"):
        zoo.load(REPO)
    assert same_weights(zoo.load(REPO, token=HUB_TOKEN), model)


def test_private_weights_are_never_pushed_to_an_existing_public_repository(
    hub: HubServer,
) -> None:
    untrained(seed=1).push_to_hub(REPO, token=HUB_TOKEN)
    with pytest.raises(zoo.HubError, match=r"exists and is public.*nothing was uploaded"):
        untrained(seed=2).push_to_hub(REPO, private=True, token=HUB_TOKEN)
    assert len(hub.commits(REPO)) == 2


def test_a_missing_revision_is_named(hub: HubServer) -> None:
    untrained().push_to_hub(REPO, token=HUB_TOKEN)
    with pytest.raises(HubRevisionNotFoundError, match=f"{REPO}@v9: .*'v9'"):
        zoo.load(f"{REPO}@v9")


def test_a_repository_without_safetensors_weights_is_refused(hub: HubServer) -> None:
    config = (weights.all_weights()["lenet.mnist"].folder / CONFIG_NAME).read_bytes()
    hub.seed(REPO, {CONFIG_NAME: config, "pytorch_model.bin": b"\x80\x02pickle"})
    with pytest.raises(HubFileNotFoundError, match=r"no model.safetensors.*never falls back"):
        zoo.load(REPO)
    assert all("pytorch_model.bin" not in request.path for request in hub.requests)


def test_a_repository_that_is_no_zoo_model_says_so(hub: HubServer) -> None:
    hub.seed(REPO, {"README.md": b"# not a model\n"})
    with pytest.raises(HubFileNotFoundError, match=r"no file 'config.json'"):
        zoo.load(REPO)


def test_offline_with_nothing_cached_is_a_clear_error(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    untrained().push_to_hub(REPO, token=HUB_TOKEN)
    hub.clear_requests()
    with pytest.raises(HubOfflineError, match=f"{REPO}: local_files_only=True and config.json"):
        zoo.load(REPO, local_files_only=True)
    set_hub_offline(monkeypatch)
    with pytest.raises(HubOfflineError, match=r"HF_HUB_OFFLINE is set .* download it once"):
        zoo.load(REPO)
    assert hub.requests == []


def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client retries a failed HEAD for 23 s before it gives up; skip the waiting."""
    monkeypatch.setattr(_http.time, "sleep", lambda seconds: None)


def test_an_unreachable_hub_is_a_clear_error(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff(monkeypatch)
    hub.set_down(True)
    with pytest.raises(HubConnectionError, match=f"{REPO}: cannot download config.json from"):
        zoo.load(REPO)


def test_an_unreachable_hub_suggests_offline_mode_when_files_are_cached(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    untrained().push_to_hub(REPO, token=HUB_TOKEN)
    zoo.load(REPO)
    untrained(seed=3).push_to_hub(REPO, revision="dev", token=HUB_TOKEN)
    no_backoff(monkeypatch)
    hub.set_down(True)
    with pytest.raises(HubConnectionError, match=f"{REPO}@dev: .*set HF_HUB_OFFLINE=1"):
        zoo.load(f"{REPO}@dev")


def test_a_corrupted_blob_is_caught_by_its_sha256_and_evicted(hub: HubServer) -> None:
    commit = untrained().push_to_hub(REPO, token=HUB_TOKEN).commit
    hub.corrupt(REPO, WEIGHTS_NAME)
    with pytest.raises(ChecksumMismatchError, match=f"downloaded from {REPO}@{commit}: sha256"):
        zoo.load(REPO)
    assert not any(Path(constants.HF_HUB_CACHE).glob(f"**/{WEIGHTS_NAME}"))
    with pytest.raises(ChecksumMismatchError):  # downloaded again, not read from the cache
        zoo.load(REPO)
    downloads = [r for r in hub.requests if r.method == "GET" and r.path.endswith(WEIGHTS_NAME)]
    assert len(downloads) == 2


def test_weights_the_registry_publishes_are_checked_against_the_registry(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = zoo.load("lenet.mnist")
    commit = model.push_to_hub(REPO, token=HUB_TOKEN).commit
    official = weights.all_weights()["lenet.mnist"]
    published = {"repo_id": REPO, "revision": commit}
    registry = {"lenet.mnist": dataclasses.replace(official, hub=published)}
    monkeypatch.setattr(weights, "all_weights", lambda: registry)
    assert same_weights(zoo.load(REPO), model)
    registry["lenet.mnist"] = dataclasses.replace(official, hub=published, sha256="0" * 64)
    with pytest.raises(ChecksumMismatchError, match="registry pins 0000") as caught:
        zoo.load(f"{REPO}@{commit}")
    assert "removed from the cache" not in str(caught.value)  # the weights were not at fault
    assert any(Path(constants.HF_HUB_CACHE).glob(f"**/{WEIGHTS_NAME}"))


def test_config_and_weights_come_from_one_commit(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = untrained("mc_dropout_lenet", seed=1)
    first.push_to_hub(REPO, token=HUB_TOKEN)
    download = huggingface_hub.hf_hub_download

    def push_after_the_config(repo_id: str, filename: str, **options: object) -> str:
        path = download(repo_id, filename, **options)
        if filename == CONFIG_NAME:  # another push lands between the two downloads
            untrained("bayesian_lenet", seed=2).push_to_hub(REPO, token=HUB_TOKEN)
        return path

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", push_after_the_config)
    assert same_weights(zoo.load(REPO), first)


def test_a_cache_that_cannot_be_used_is_a_clear_error(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    untrained().push_to_hub(REPO, token=HUB_TOKEN)
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(zoo.HubError, match="cannot use the Hugging Face cache at"):
        zoo.load(REPO, cache_dir=tmp_path / "a-file" / "hub")


def test_pushing_in_offline_mode_is_a_clear_error(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_hub_offline(monkeypatch)
    with pytest.raises(HubOfflineError, match="HF_HUB_OFFLINE is set: unset it to push"):
        untrained().push_to_hub(REPO, token=HUB_TOKEN)
    assert hub.requests == []


@pytest.mark.parametrize("branch", ["", "a b", "refs/pr/1", "x..y", "dev/", "0" * 40])
def test_a_bad_branch_is_refused_before_anything_is_sent(hub: HubServer, branch: str) -> None:
    with pytest.raises(ModelConfigError, match="--revision must name a branch"):
        untrained().push_to_hub(REPO, revision=branch, token=HUB_TOKEN)
    assert hub.requests == []


def test_a_push_to_an_unreachable_hub_is_a_clear_error(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff(monkeypatch)
    hub.set_down(True)
    with pytest.raises(HubConnectionError, match=f"{REPO}: cannot reach the Hub at {hub.url}"):
        untrained().push_to_hub(REPO, token=HUB_TOKEN)


def test_a_push_without_a_valid_token_is_refused(hub: HubServer) -> None:
    with pytest.raises(HubAuthenticationError, match=f"{REPO}: the Hub needs a token.*HF_TOKEN"):
        untrained().push_to_hub(REPO)
    with pytest.raises(HubAuthenticationError, match="refused the token") as caught:
        untrained().push_to_hub(REPO, token="hf_wrongToken123")
    assert "hf_wrongToken123" not in str(caught.value)
    assert not hub.repo_exists(REPO)


@pytest.mark.parametrize("exists", [False, True])
def test_a_push_where_the_token_may_not_write_is_refused(hub: HubServer, exists: bool) -> None:
    if exists:
        hub.seed("someone-else/model", {"README.md": b"# theirs\n"})
    with pytest.raises(HubAuthenticationError, match="someone-else/model: the Hub refused"):
        untrained().push_to_hub("someone-else/model", token=HUB_TOKEN)
    assert hub.repo_exists("someone-else/model") == exists
    assert not exists or len(hub.commits("someone-else/model")) == 2  # theirs, untouched


def test_a_token_from_hf_token_is_used(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    untrained().push_to_hub(REPO)
    writes = [r for r in hub.requests if r.method == "POST"]
    assert writes and all(r.headers["authorization"] == f"Bearer {HUB_TOKEN}" for r in writes)


@pytest.mark.parametrize("repo_id", ["lenet", "org/name@main", "a/b/c", "org/bad..name"])
def test_a_bad_repo_id_is_refused_before_anything_is_sent(hub: HubServer, repo_id: str) -> None:
    with pytest.raises(ModelConfigError, match="--repo-id must be a Hub repository id"):
        untrained().push_to_hub(repo_id, token=HUB_TOKEN)
    assert hub.requests == []


def test_a_broken_folder_is_never_published(hub: HubServer, tmp_path: Path) -> None:
    folder = untrained().save_pretrained(tmp_path / "model")
    data = bytearray((folder / WEIGHTS_NAME).read_bytes())
    data[-1] ^= 1
    (folder / WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError):
        zoo.push_to_hub(folder, REPO, token=HUB_TOKEN)
    assert hub.requests == []


def test_folders_come_before_the_hub_and_names_before_folders(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    local = untrained(seed=4)
    local.save_pretrained(tmp_path / "zoo-test" / "lenet")
    local.save_pretrained(tmp_path / "lenet.mnist")
    assert same_weights(zoo.load(REPO), local)
    with pytest.warns(UserWarning, match="also a folder here.*write ./lenet.mnist"):
        assert not same_weights(zoo.load("lenet.mnist"), local)
    assert same_weights(zoo.load("./lenet.mnist"), local)
    assert hub.requests == []


def test_a_revision_always_means_the_hub(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = untrained(seed=1)
    published.push_to_hub(REPO, token=HUB_TOKEN)
    monkeypatch.chdir(tmp_path)
    untrained(seed=2).save_pretrained(tmp_path / REPO)
    assert same_weights(zoo.load(REPO, revision="main"), published)
    assert same_weights(zoo.load(f"{REPO}@main"), published)


def test_a_folder_that_hides_a_hub_id_but_holds_no_model_says_so(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / REPO).mkdir(parents=True)
    with pytest.raises(
        CheckpointError, match=f"hides the Hub repository {REPO}: write {REPO}@main"
    ):
        zoo.load(REPO)


def test_a_revision_applies_to_hub_repositories_only(hub: HubServer) -> None:
    with pytest.raises(ModelConfigError, match="Hugging Face Hub repositories only"):
        zoo.load("lenet.mnist", revision="main")
    with pytest.raises(ModelConfigError, match="give one"):
        zoo.from_pretrained(f"{REPO}@v1", revision="v2")


def test_a_missing_path_is_not_mistaken_for_a_hub_id(hub: HubServer, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such folder"):
        zoo.load(tmp_path / "missing" / "model")
    with pytest.raises(CheckpointError, match="no such folder"):
        zoo.load(Path("org/name"))  # a Path is never a Hub id
    with pytest.raises(ModelConfigError, match="nothing after '@'"):
        zoo.load(f"{REPO}@")
    assert hub.requests == []


BAD_REVISIONS = [
    "../../../../somewhere/else",
    "..",
    "main/../../x",
    "/etc",
    "-rf",
    "a\x00b",
    "a\x1b[2Jb",
    "x" * 256,
    "a~1",
    "a:b",
    "a//b",
    "branch/",
    "v1.lock",
    ".hidden",
    "@",
    "a@{1}",
    "a\\b",
    "a*",
]


@pytest.mark.parametrize("revision", BAD_REVISIONS)
def test_a_revision_that_is_no_ref_name_is_refused_before_any_request(
    hub: HubServer, revision: str, tmp_path: Path
) -> None:
    with pytest.raises(ModelConfigError, match=r"^revision '") as caught:
        zoo.load(REPO, revision=revision)
    messages = [str(caught.value)]
    for call in (lambda: zoo.load(f"{REPO}@{revision}"), lambda: model_info(f"{REPO}@{revision}")):
        with pytest.raises((ModelConfigError, zoo.InvalidInputError)) as caught:
            call()  # a NUL is refused in the name as a whole, before the revision is read
        messages.append(str(caught.value))
    for message in messages:  # one line, control characters shown escaped
        assert not any(character in message for character in "\n\x1b\x00")
    with pytest.raises(ModelConfigError, match="--revision must name a branch"):
        untrained().push_to_hub(REPO, revision=revision, token=HUB_TOKEN)
    assert hub.requests == []


@pytest.mark.parametrize("revision", ["v1.0", "feature/x-2", "refs/pr/1", "a" * 40, "caf\u00e9"])
def test_a_ref_name_or_commit_is_asked_of_the_hub(hub: HubServer, revision: str) -> None:
    untrained().push_to_hub(REPO, token=HUB_TOKEN)
    with pytest.raises(HubRevisionNotFoundError, match="has no branch, tag or commit"):
        zoo.load(REPO, revision=revision)  # past the check: the Hub says it has no such ref


def test_a_hub_that_cannot_be_reached_fails_at_once_and_says_so(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_hub_server import record_backoff_sleeps

    sleeps = record_backoff_sleeps(monkeypatch)
    hub.set_down(True)
    with pytest.raises(HubConnectionError, match="the host cannot be reached at all") as caught:
        zoo.load(REPO)
    assert "Connection refused" in str(caught.value)
    with pytest.raises(HubConnectionError, match="cannot reach the Hub"):
        untrained().push_to_hub(REPO, token=HUB_TOKEN)
    assert sleeps == []  # the client's 23 s of retries were never started


def test_an_unreachable_hub_loads_what_is_cached_at_once(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_hub_server import record_backoff_sleeps

    model = untrained()
    model.push_to_hub(REPO, token=HUB_TOKEN)
    zoo.load(REPO)
    sleeps = record_backoff_sleeps(monkeypatch)
    hub.set_down(True)
    assert same_weights(zoo.load(REPO), model)
    assert model_info(REPO)["architecture"] == "lenet"
    assert sleeps == []


def test_a_model_with_non_finite_weights_is_never_published(hub: HubServer, tmp_path: Path) -> None:
    model = untrained()
    model.save_pretrained(tmp_path / "folder")
    with torch.no_grad():
        model.layers.fc3.bias[0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        model.push_to_hub(REPO, token=HUB_TOKEN)
    tensors = {name: value.clone() for name, value in model.state_dict().items()}
    data = safetensors.torch.save(tensors)
    (tmp_path / "folder" / WEIGHTS_NAME).write_bytes(data)
    config = json.loads((tmp_path / "folder" / CONFIG_NAME).read_text())
    config["weights_sha256"] = sha256(data)
    (tmp_path / "folder" / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        zoo.push_to_hub(tmp_path / "folder", REPO, token=HUB_TOKEN)
    assert hub.requests == [] and not hub.repo_exists(REPO)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: zoo.load(REPO, token=123), "token must be a string, not int"),
        (lambda: zoo.load(REPO, cache_dir=3), "cache_dir must be a folder's path"),
        (lambda: zoo.push_to_hub("lenet.mnist", 42), "--repo-id must be a Hub repository id"),
        (
            lambda: untrained().push_to_hub(REPO, evaluation={"acc": 1.0}),
            "evaluation must be a zoo.evaluate report, not dict",
        ),
    ],
)
def test_hub_arguments_of_the_wrong_type_say_what_is_expected(
    hub: HubServer, call: object, message: str
) -> None:
    with pytest.raises(zoo.ZooError, match=message):
        call()  # type: ignore[operator]
    assert hub.requests == []
