"""`zoo serve`: the JSON API through an ASGI client, the server as a real process, and the
page in a real headless browser."""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from PIL import Image

import zoo
from zoo.images import classify_files
from zoo.limits import MAX_IMAGE_FILE_BYTES, MAX_IMAGE_SIDE

starlette = pytest.importorskip("starlette", reason="the serve extra is not installed")
from starlette.testclient import TestClient  # noqa: E402

from zoo.server import ServedModel, create_app, load_models  # noqa: E402

MODELS = ["lenet.mnist", "mc_dropout_lenet.mnist"]
STROKE = [[255 if 4 <= row < 24 and 13 <= column < 15 else 0 for column in range(28)]
          for row in range(28)]  # fmt: skip


def one() -> torch.Tensor:
    """A "1" in dark ink on white paper, as a user would draw it."""
    paper = torch.full((200, 160), 255, dtype=torch.uint8)
    paper[30:170, 70:88] = 0
    paper[30:50, 55:75] = 0  # the flag
    return paper


def png(pixels: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def served() -> list[ServedModel]:
    models = [zoo.load(name) for name in MODELS]
    return [
        ServedModel(name, model, name, threshold, "given")
        for name, model, threshold in zip(MODELS, models, (0.5, None), strict=True)
    ]


@pytest.fixture(scope="module")
def client(served: list[ServedModel]) -> TestClient:
    return TestClient(create_app(served, samples=8, seed=0))


def test_the_page_and_its_files_come_from_the_package(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<canvas id="canvas"' in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
        assert "http://" not in asset.text and "https://" not in asset.text  # nothing fetched
    assert "http" not in page.text.replace('"/static/', "")  # no CDN, works offline
    assert client.get("/static/index.html.bak").status_code == 404
    assert client.get("/static/..%2Fserver.py").status_code == 404


def test_the_models_are_listed_with_their_thresholds(client: TestClient) -> None:
    listed = client.get("/api/models").json()["models"]
    assert [model["name"] for model in listed] == MODELS
    assert listed[0]["unfamiliar_threshold"] == 0.5 and listed[1]["unfamiliar_threshold"] is None
    assert listed[1]["stochastic"] and listed[0]["classes"] == [str(i) for i in range(10)]


def test_an_image_gets_the_answer_zoo_predict_gives(client: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "one.png"
    path.write_bytes(png(one()))
    answer = client.post(
        "/api/predict",
        files={"image": ("one.png", png(one()), "image/png")},
        data={"model": MODELS[1]},
    )
    assert answer.status_code == 200, answer.text
    answer = answer.json()
    [expected] = classify_files(zoo.load(MODELS[1]), [path], samples=8, seed=0)
    for key, value in expected.items():
        if key != "image":
            assert answer[key] == value, key
    assert answer["image"] == "one.png" and answer["model"] == MODELS[1]
    assert answer["label"] == "1" and len(answer["votes"]) == 8
    assert len(answer["pixels"]) == 28 and all(len(row) == 28 for row in answer["pixels"])
    assert answer["unfamiliar"]["threshold"] is None and not answer["unfamiliar"]["flagged"]
    first = client.post("/api/predict", files={"image": ("a.png", png(one()), "image/png")})
    assert first.json()["model"] == MODELS[0]  # the first model is the default
    unfamiliar = first.json()["unfamiliar"]
    assert unfamiliar["threshold"] == 0.5
    assert unfamiliar["flagged"] == (unfamiliar["value"] >= 0.5)


def test_pixels_as_json_are_taken_as_they_are(client: TestClient) -> None:
    pixels = torch.zeros(28, 28, dtype=torch.uint8)
    pixels[4:24, 13:15] = 255
    answer = client.post(
        "/api/predict", json={"pixels": pixels.tolist(), "model": MODELS[1], "samples": 4}
    )
    assert answer.status_code == 200, answer.text
    answer = answer.json()
    assert answer["pixels"] == pixels.tolist() and answer["prepared"]["layout"] == "as-is"
    assert len(answer["votes"]) == 4 and answer["image"] == "pixels"


@pytest.mark.parametrize(
    ("request_arguments", "status", "message"),
    [
        ({"files": {"image": ("x.png", b"not a picture", "image/png")}}, 400, "not an image"),
        ({"files": {"image": ("x.png", png(one()), "image/png")}, "data": {"model": "nope"}},
         404, "no model 'nope'"),
        ({"files": {"image": ("b.png", png(torch.full((30, 30), 200, dtype=torch.uint8)),
                               "image/png")}}, 422, "no digit"),
        ({"files": {"image": ("big.png", png(torch.zeros(1, MAX_IMAGE_SIDE + 1,
                                                         dtype=torch.uint8)), "image/png")}},
         413, "at most"),
        ({"files": {"picture": ("x.png", png(one()), "image/png")}}, 400, "field 'image'"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400,
         "not JSON"),
        ({"json": {"pixels": [[0] * 28] * 27}}, 400, "28 rows of 28 numbers"),
        ({"json": {"pixels": [[300] * 28] * 28}}, 400, "from 0 to 255"),
        ({"json": {"pixels": STROKE, "samples": 0}}, 400, "samples must be"),
        ({"json": {"pixels": STROKE, "seed": -1}}, 400, "seed must be"),
        ({"json": {"pixels": STROKE, "samples": "²"}}, 400, "samples must be"),
        ({"json": {"pixels": STROKE, "seed": "9" * 5000}}, 400, "seed must be"),
        ({"json": {"pixels": [[0] * 28] * 28}}, 422, "no digit"),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 400, "multipart"),
        ({"content": b"x", "headers": {"content-type": "multipart/form-data; boundary=b",
                                       "content-length": str(MAX_IMAGE_FILE_BYTES * 2)}},
         413, "larger than"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_4xx_with_a_json_error(
    client: TestClient, request_arguments: dict, status: int, message: str
) -> None:
    answer = client.post("/api/predict", **request_arguments)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_unknown_routes_and_methods_answer_in_json(client: TestClient) -> None:
    missing = client.get("/api/nothing")
    assert missing.status_code == 404 and "error" in missing.json()
    wrong = client.get("/api/predict")
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_broken_exif_metadata_is_ignored_not_fatal(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.fromarray(one().numpy()).save(buffer, format="PNG", exif=b"Exif\x00\x00MM\x00|junk")
    answer = client.post("/api/predict", files={"image": ("exif.png", buffer.getvalue())})
    assert answer.status_code == 200, answer.text
    assert answer.json()["label"] == "1"


def test_a_body_over_the_limit_is_refused_while_it_streams(client: TestClient) -> None:
    def chunks():
        for _ in range(80):
            yield b"0" * 1024  # 80 KiB of JSON, with no length said beforehand

    answer = client.post(
        "/api/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]


def test_thresholds_come_from_the_registry_or_are_measured_at_start(
    tiny_data_root: Path, tmp_path: Path
) -> None:
    (shipped,) = load_models(["lenet.mnist"])
    recorded = zoo.weights.all_weights()["lenet.mnist"].evaluation["ood_threshold"]
    assert shipped.threshold == recorded and "registry" in shipped.threshold_source
    folder = zoo.create_model("lenet").save_pretrained(tmp_path / "mine")
    (measured,) = load_models([str(folder)], tiny_data_root)
    expected = zoo.evaluate(folder, data_dir=tiny_data_root, device="cpu")
    assert measured.threshold == expected.provenance["ood_threshold"]
    assert "measured at start" in measured.threshold_source
    (unknown,) = load_models([str(folder)], tmp_path / "no-data")
    assert unknown.threshold is None and "not at hand" in unknown.threshold_source


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> str:
    """`zoo serve` as a real process on a free port; its URL."""
    port = free_port()
    executable = Path(sys.executable).with_name("zoo")
    process = subprocess.Popen(
        [str(executable), "serve", *MODELS, "--port", str(port), "--samples", "8"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/api/models", timeout=5)
            break
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None:
                pytest.fail(f"zoo serve exited: {process.communicate()[1]}")
            time.sleep(0.2)
    yield url
    process.send_signal(signal.SIGINT)  # as Ctrl-C does
    _, said = process.communicate(timeout=30)
    assert process.returncode == 0, said
    assert f"at {url}/ (Ctrl-C stops)" in said and said.rstrip().endswith("stopped")


def post_png(url: str, data: bytes) -> dict:
    boundary = "zoo-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="one.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{url}/api/predict?model=mc_dropout_lenet.mnist",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_the_server_answers_requests_concurrently_with_the_same_answers(server: str) -> None:
    data = png(one())
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post_png(server, data), range(16)))
    # MC dropout draws its masks from torch's generators, which each answer seeds: answers
    # made at once are the same only if no forward pass draws from another's stream
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["label"] == "1" and len(answers[0]["votes"]) == 8


def test_a_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        executable = Path(sys.executable).with_name("zoo")
        result = subprocess.run(
            [str(executable), "serve", "lenet.mnist", "--port", str(port)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    assert (
        f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
    )


def browser_missing() -> str | None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return (
            "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (the dev extra)"
    return None


@pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")
def test_the_page_reads_a_one_drawn_with_the_pointer(server: str, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,1250"):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium")
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get(server)
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 2)
        canvas = driver.find_element(By.ID, "canvas")
        # a "1": a short flag up to the right, then a long stroke down, as a pen draws it
        actions = ActionChains(driver)
        actions.move_to_element_with_offset(canvas, -20, -90).click_and_hold()
        for _ in range(6):
            actions.move_by_offset(4, -3)
        for _ in range(20):
            actions.move_by_offset(0, 10)
        actions.release().perform()
        wait.until(lambda d: d.find_element(By.ID, "prediction").text not in ("", "?"))
        assert driver.find_element(By.ID, "prediction").text == "1"
        votes = driver.find_elements(By.CSS_SELECTOR, "#votes .vote")
        assert len(votes) == 1  # lenet.mnist, the first model: one deterministic sample
        Select(driver.find_element(By.ID, "model")).select_by_value("mc_dropout_lenet.mnist")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#votes .vote")) == 8)
        assert driver.find_element(By.ID, "prediction").text == "1"
        for field in ("entropy", "aleatoric", "mi"):
            assert driver.find_element(By.ID, field).text.endswith(" nats")
        assert "sure it is 1" in driver.find_element(By.ID, "confidence").text
        assert driver.find_element(By.ID, "unfamiliar").text
        seen = driver.execute_script(
            "const c = document.getElementById('seen').getContext('2d');"
            "return Array.from(c.getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 == 0)"
        )
        assert max(seen) == 255 and seen[0] == 0  # white ink on black, as MNIST
        screenshot = Path(os.environ.get("ZOO_SCREENSHOT_DIR", tmp_path)) / "zoo-serve-page.png"
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        print(f"screenshot: {screenshot}")
    finally:
        driver.quit()
