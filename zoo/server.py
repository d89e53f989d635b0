"""`zoo serve`: a page to draw digits on, and the JSON API behind it.

A Starlette app on uvicorn (the ``serve`` extra: ``pip install 'uncertainty-zoo[serve]'``):

- ``GET /``: the page, plain HTML, CSS and JavaScript from the package, nothing fetched from
  elsewhere, so it works offline;
- ``GET /api/models``: the models served, with the threshold that flags an input as unfamiliar;
- ``POST /api/predict``: an image file as the multipart form field ``image``, or a JSON body
  ``{"pixels": [[...28 numbers 0-255...], ...28 rows]}`` taken as an MNIST image as it is;
  the model, samples and seed as form fields, JSON keys or query parameters. The answer has
  the fields of ``zoo predict --json``, the 28x28 ``pixels`` the model saw, and
  ``unfamiliar``: the entropy, the model's threshold and whether it is reached.

The threshold is the predictive entropy at and above which 95% of the FashionMNIST test
images lie, from the model's evaluation (the registry's, or the eval.json of its folder), or
measured at start where it has none: with it, about the share of MNIST test images its FPR95
says would be flagged is flagged. Bad requests get a 4xx answer with a JSON ``error``: 413
for a body over the limit of ``zoo predict``'s files, 408 for one that takes over a minute
to arrive, 400 for what is not an image or not 28x28 pixels, 404 for an unknown model or
route, 422 for an image with no digit.

Models are loaded once, at start. Requests are answered concurrently, up to
`MAX_CONNECTIONS` at once (uvicorn answers 503 beyond); images are decoded two at a time in
worker threads, and the forward passes, which seed torch's generators, one at a time.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.digits import MIN_CONTRAST, PreparedDigit
from zoo.errors import (
    DatasetError,
    ImageFileError,
    ImageTooLargeError,
    InvalidInputError,
    ListenError,
    MissingExtraError,
    NoDigitError,
    ZooError,
)
from zoo.evaluation import evaluate
from zoo.images import classify_digits, decode_digit
from zoo.limits import MAX_IMAGE_FILE_BYTES, MAX_SAMPLES
from zoo.loading import load
from zoo.models.base import ZooModel
from zoo.options import DEFAULT_SAMPLES
from zoo.pretrained import CONFIG_NAME, read_config
from zoo.report import read_folder_report
from zoo.text import escaped
from zoo.weights import find_weights

INSTALL_HINT = "pip install 'uncertainty-zoo[serve]'"
PAGE_DIR = Path(__file__).resolve().parent / "page"  # shipped in the package
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
MAX_JSON_BYTES = 64 << 10  # a 28x28 array of numbers, with room to spare
BODY_SECONDS = 60  # a body slower than this to arrive is refused (408)
MAX_CONNECTIONS = 32  # uvicorn answers 503 beyond these
_IMAGE_ERROR_STATUS = {ImageTooLargeError: 413, NoDigitError: 422}


@dataclass
class ServedModel:
    """A model loaded for serving, and what flags its inputs as unfamiliar."""

    name: str
    model: ZooModel
    summary: str
    threshold: float | None
    threshold_source: str
    threshold_samples: int | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "architecture": self.model.architecture,
            "summary": self.summary,
            "stochastic": self.model.stochastic,
            "classes": list(self.model.class_labels),
            "unfamiliar_threshold": self.threshold,
            "threshold_samples": self.threshold_samples,
            "threshold_source": self.threshold_source,
        }


class RequestError(Exception):
    """A request answered with ``status`` and a JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def require_server() -> None:
    """Raise `MissingExtraError` with the install command unless the serve extra is there."""
    try:
        import python_multipart  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise MissingExtraError(f"zoo serve needs the serve extra: {INSTALL_HINT}") from None


def load_models(
    names: Sequence[str], data_dir: str | os.PathLike[str] | None = None
) -> list[ServedModel]:
    """Load each model once, with its unfamiliarity threshold (see the module docstring)."""
    if not names:
        raise InvalidInputError("serve at least one model")
    served = []
    for name in dict.fromkeys(names):  # each once, in order
        model = load(name)
        entry = find_weights(name)
        summary = entry.summary if entry else model.architecture
        threshold, threshold_samples, source = _threshold(name, model, entry, data_dir)
        served.append(ServedModel(name, model, summary, threshold, source, threshold_samples))
    return served


def _threshold(
    name: str, model: ZooModel, entry: Any, data_dir: str | os.PathLike[str] | None
) -> tuple[float | None, int | None, str]:
    """The model's unfamiliarity threshold, the samples it was measured with, and where it
    comes from: its registry entry, its folder's eval.json, or an evaluation run now."""
    evaluation = entry.evaluation if entry is not None else _folder_evaluation(name, model)
    if evaluation and evaluation.get("ood_score") == "entropy":
        value = evaluation.get("ood_threshold")
        if isinstance(value, float):
            where = "the registry's evaluation" if entry is not None else "its eval.json"
            return value, evaluation["samples"], where
    try:
        report = evaluate(model, ood="fashion_mnist", data_dir=data_dir, device="cpu")
    except DatasetError:
        return None, None, "none: no evaluation records one, and the test sets are not at hand"
    provenance = report.provenance
    where = "measured at start on FashionMNIST's test set"
    return provenance["ood_threshold"], provenance["samples"], where


def _folder_evaluation(name: str, model: ZooModel) -> dict[str, Any] | None:
    folder = Path(name)
    if not folder.is_dir():
        return None
    try:
        config = read_config(folder / CONFIG_NAME)
        report = read_folder_report(folder, config.weights_sha256, model.temperature)
    except ZooError:
        return None
    return report.provenance if report else None


def create_app(
    models: Sequence[ServedModel], *, samples: int = DEFAULT_SAMPLES, seed: int = 0
) -> Any:
    """The Starlette app serving ``models`` (the first is the page's default)."""
    require_server()
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    by_name = {served.name: served for served in models}
    forward_lock = threading.Lock()
    decoding = asyncio.Semaphore(2)  # images decoded at once: each may take a second and 1 GB
    page = _page_text("index.html")

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in PAGE_FILES:
            return JSONResponse({"error": "no such file"}, status_code=404)
        return Response(_page_text(name), media_type=PAGE_FILES[name])

    async def list_models(request: Request) -> Response:
        return JSONResponse({"models": [served.describe() for served in models]})

    async def predict(request: Request) -> Response:
        try:
            fields, digit, source = await _read_request(request, decoding)
            served = by_name.get(fields.get("model") or models[0].name)
            if served is None:
                raise RequestError(404, f"no model {str(fields.get('model'))[:200]!r} is served")
            count = _integer(fields.get("samples"), samples, 1, MAX_SAMPLES, "samples")
            chosen_seed = _integer(fields.get("seed"), seed, 0, 2**64 - 1, "seed")

            def forward() -> dict[str, Any]:
                with forward_lock, torch.inference_mode():
                    (result,) = classify_digits(served.model, [digit.pixels], count, chosen_seed)
                return result

            result = await run_in_threadpool(forward)
        except RequestError as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        except ZooError as error:  # the model failed on a good request: NaN outputs, say
            return JSONResponse({"error": str(error)}, status_code=500)
        flagged = served.threshold is not None and result["entropy"] >= served.threshold
        answer = {"image": source, "model": served.name, "prepared": digit.describe()}
        answer |= result | {"pixels": digit.pixels.tolist()}
        answer["unfamiliar"] = {
            "score": "entropy",
            "value": result["entropy"],
            "threshold": served.threshold,
            "threshold_samples": served.threshold_samples,
            "flagged": flagged,
        }
        return JSONResponse(answer)

    routes = [
        Route("/", index),
        Route("/static/{name}", asset),
        Route("/api/models", list_models),
        Route("/api/predict", predict, methods=["POST"]),
    ]

    async def http_error(request: Request, error: Exception) -> Response:
        status = getattr(error, "status_code", 500)
        return JSONResponse({"error": getattr(error, "detail", "error")}, status_code=status)

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


async def _read_request(
    request: Any, decoding: asyncio.Semaphore
) -> tuple[dict[str, str], PreparedDigit, str]:
    """The request's fields, its digit laid out, and what the digit came as."""
    fields = {key: value for key, value in request.query_params.items()}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = await _body(request, MAX_JSON_BYTES)
        try:
            raw = json.loads(body)
        except (ValueError, RecursionError):
            raise RequestError(400, "the body is not JSON") from None
        if not isinstance(raw, dict) or "pixels" not in raw:
            raise RequestError(400, 'a JSON body is {"pixels": 28 rows of 28 numbers 0-255}')
        _take_fields(fields, raw)
        return fields, _pixels_digit(raw["pixels"]), "pixels"
    if content_type.startswith("multipart/form-data"):
        body = await _body(request, MAX_IMAGE_FILE_BYTES + (64 << 10))
        form = await _parse_form(request.headers, body)
        try:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise RequestError(400, "send the image as the multipart form field 'image'")
            _take_fields(fields, {key: value for key, value in form.items() if key != "image"})
            data = await upload.read(MAX_IMAGE_FILE_BYTES + 1)
            name = (upload.filename or "image")[:200]
        finally:
            await form.close()
        if len(data) > MAX_IMAGE_FILE_BYTES:
            raise RequestError(413, f"the image file is larger than {MAX_IMAGE_FILE_BYTES:,} bytes")
        from starlette.concurrency import run_in_threadpool

        async with decoding:  # decoding a large image takes a second: off the event loop
            try:
                digit = await run_in_threadpool(decode_digit, data, escaped(name))
            except ImageFileError as error:
                status = _IMAGE_ERROR_STATUS.get(type(error), 400)
                raise RequestError(status, str(error)) from None
        return fields, digit, name
    raise RequestError(400, "send an image as multipart/form-data, or pixels as JSON")


def _take_fields(fields: dict[str, str], given: dict[str, Any]) -> None:
    """Copy the model, samples and seed that ``given`` holds into ``fields``, as text."""
    for key in ("model", "samples", "seed"):
        value = given.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            fields[key] = str(value)[:200]


async def _body(request: Any, limit: int) -> bytes:
    """The request's body, refused with 413 once it passes ``limit`` bytes, and with 408 when
    it takes longer than `BODY_SECONDS` to arrive."""
    declared = request.headers.get("content-length", "0")
    if not (declared.isascii() and declared.isdigit()) or int(declared) > limit:
        raise RequestError(413, f"the request is larger than {limit:,} bytes")
    body = bytearray()

    async def receive() -> None:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise RequestError(413, f"the request is larger than {limit:,} bytes")

    try:
        await asyncio.wait_for(receive(), BODY_SECONDS)
    except asyncio.TimeoutError:
        raise RequestError(408, f"the request took over {BODY_SECONDS} s to arrive") from None
    return bytes(body)


async def _parse_form(headers: Any, body: bytes) -> Any:
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        return await MultiPartParser(headers, stream(), max_files=1, max_fields=8).parse()
    except MultiPartException as error:
        raise RequestError(400, f"the form cannot be read: {error}") from None


def _pixels_digit(pixels: object) -> PreparedDigit:
    """A 28x28 array of numbers from 0 to 255, taken as an MNIST image as it is."""
    shape_ok = (
        isinstance(pixels, list)
        and len(pixels) == 28
        and all(isinstance(row, list) and len(row) == 28 for row in pixels)
    )
    values_ok = shape_ok and all(
        isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 255
        for row in pixels  # type: ignore[union-attr]
        for value in row
    )
    if not values_ok:
        raise RequestError(400, "pixels must be 28 rows of 28 numbers from 0 to 255")
    tensor = torch.tensor(pixels, dtype=torch.float32).round().to(torch.uint8)
    if int(tensor.max()) - int(tensor.min()) < MIN_CONTRAST * 255:
        raise RequestError(422, "no digit in the pixels: they are all about one level")
    return PreparedDigit(tensor, inverted=False, polarity="given", layout="as-is")


def _integer(value: str | None, default: int, low: int, high: int, name: str) -> int:
    if value is None or value == "":
        return default
    digits = value.isascii() and value.isdigit() and len(value) <= len(str(high))
    if not digits or not low <= int(value) <= high:
        raise RequestError(400, f"{name} must be a whole number from {low} to {high}")
    return int(value)


def _page_text(name: str) -> str:
    return (PAGE_DIR / name).read_text(encoding="utf-8")


def serve(
    models: Sequence[ServedModel],
    listening: socket.socket,
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve ``models`` on the bound socket ``listening`` (see `listen`) until Ctrl-C,
    calling ``announce`` with the page's address first; the socket is closed after."""
    import uvicorn

    app = create_app(models, samples=samples, seed=seed)
    host, port = listening.getsockname()[:2]
    config = uvicorn.Config(app, log_level="warning", limit_concurrency=MAX_CONNECTIONS)
    with listening:
        announce(f"http://{f'[{host}]' if ':' in host else host}:{port}/")
        uvicorn.Server(config).run(sockets=[listening])


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port``, or a `ListenError` saying why not."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
        listening = socket.socket(family, kind, protocol)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
    except OSError as error:
        raise ListenError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return listening
