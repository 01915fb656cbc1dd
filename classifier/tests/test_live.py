"""The live page: the model served to the browser, frames saved with both answers,
and the page itself in real headless Chromium with a real (fake-device) camera
stream made from dataset photos, online and offline.

The browser test needs Debian's chromium, the runtime from npm (`npm ci`),
the training images and a served model with a fixed batch of 1 (what the
browser's runtime can run); it is skipped, saying which is missing, otherwise.
USBILLS_LIVE_TEST_MODELS may name another models directory to serve.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from PIL import Image

from classifier import selectors, services, serving
from classifier.live.views import browser_refusal
from classifier.models import Prediction
from conftest import REPO, SHIPPED_MODELS, image_bytes, uploaded

CHROMIUM = Path("/usr/bin/chromium")
RUNTIME = REPO / "node_modules" / "@litertjs" / "core" / "dist" / "index.js"
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
# Photos the served model should know well, tried in order: a flat $20 and a
# foreign note (the first the current model is sure of is used).
TWENTIES = [
    "usd_20/emerson5123-767d6c5bfc3c.jpg",
    "usd_20/emerson5123-4d8312a6f318.jpg",
    "usd_20/bluebirdseven-054950c092bd.jpg",
]
FOREIGN = [
    "not_a_bill/christinelumen-01df8b9e7f44.jpg",
    "not_a_bill/christinelumen-1130539e6b44.jpg",
    "not_a_bill/christinelumen-03cc4f847964.jpg",
]
# The fake camera's video: seconds of each scene, frames per second, size.
NOTHING_S, NOTE_S, FOREIGN_S = 3, 4, 4
FPS, WIDTH, HEIGHT = 30, 320, 240


def device_fields(**overrides):
    fields = {
        "device_label": "usd_20",
        "device_answer": "usd_20",
        "device_confidence": "0.97",
        "device_model_version": "tiny-test",
    }
    return {**fields, **overrides}


# The server's side ------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_is_signed_in_only_and_cross_origin_isolated(user_client):
    assert Client().get("/live/").status_code == 302
    assert Client().get("/live/model/").status_code == 302
    response = user_client.get("/live/")
    assert response.status_code == 200
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert b'aria-live="assertive"' in response.content
    assert b'href="/live/" aria-current="page"' in response.content
    worker = user_client.get("/live/sw.js")
    assert worker["Content-Type"].startswith("text/javascript")
    assert worker["Cache-Control"] == "no-cache"


@pytest.mark.django_db
def test_the_runtime_is_served_isolated_and_only_its_own_files(client):
    if not RUNTIME.is_file():
        missing("node_modules lacks @litertjs/core: run `npm ci`")
    response = client.get("/live/runtime/litert_wasm_threaded_internal.wasm")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/wasm"
    assert response["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    assert b"".join(response.streaming_content)[:4] == b"\0asm"
    loader = client.get("/live/runtime/litert_wasm_internal.js")
    assert loader["Content-Type"] == "text/javascript"
    for name in ("index.js", "package.json", "..%2Fpackage.json", "litert_wasm_internal.wasm.map"):
        assert client.get(f"/live/runtime/{name}").status_code == 404, name


@pytest.mark.django_db
def test_the_active_model_is_served_by_version_and_cached_for_ever(user_client, tiny_model_dir):
    services.model_version_sync()
    active = user_client.get("/live/model/").json()
    assert active["version"] == "tiny-test"
    assert active["model"] == "/live/model/tiny-test/model.tflite"
    # The tiny model is exported like the real one: fixed batch or not, it says so.
    assert active["runs_in_browser"] is (
        browser_refusal(str(tiny_model_dir / "tiny-test.tflite")) is None
    )

    model = user_client.get(active["model"])
    assert model["Cache-Control"] == "private, max-age=31536000, immutable"
    assert b"".join(model.streaming_content) == (tiny_model_dir / "tiny-test.tflite").read_bytes()
    card = user_client.get(active["card"])
    assert card.json()["version"] == "tiny-test"
    assert card["Cache-Control"] == "private, max-age=31536000, immutable"
    assert user_client.get("/live/model/no-such-version/model.tflite").status_code == 404


def test_a_dynamic_batch_is_refused_with_the_reason(tmp_path):
    tf = pytest.importorskip("tensorflow")
    inputs = tf.keras.Input((8, 8, 3))  # batch: None
    model = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(inputs))
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    reason = browser_refusal(str(path))
    assert reason is not None
    assert "not fixed" in reason
    assert browser_refusal(str(tmp_path / "missing.tflite")).startswith("the model file")


@pytest.mark.django_db
def test_saving_a_frame_stores_both_answers(user_client, user, media_root):
    data = {"image": uploaded(image_bytes(224, 224)), **device_fields()}
    response = user_client.post("/live/save/", data)
    assert response.status_code == 201
    body = response.json()
    prediction = Prediction.objects.get(pk=body["id"])
    assert prediction.upload.owner == user
    assert (prediction.device_label, prediction.device_answer) == ("usd_20", "usd_20")
    assert prediction.device_confidence == pytest.approx(0.97)
    assert prediction.device_model_version == "tiny-test"
    # The server classified the photo itself, and the two are compared.
    assert body["answer"] == prediction.answer
    assert body["agrees"] is (prediction.answer == "usd_20")
    assert prediction.device_disagrees is (prediction.answer != "usd_20")
    # A saved frame is an upload like any other: its band and its page-size copy.
    bands = serving.get_predictor().bands
    assert prediction.band == bands.band(prediction.label, prediction.confidence)
    assert body["band"] == prediction.band
    assert prediction.upload.display.name.startswith("display/")
    assert (media_root / prediction.upload.display.name).is_file()
    shown = user_client.get(f"/predictions/{prediction.pk}/display/")
    assert shown.status_code == 200
    assert shown["Content-Type"] == "image/jpeg"
    page = user_client.get(body["url"]).content.decode()
    assert "Saved from live mode: your phone said $20" in page
    assert ("a reviewer will look at it" in page) is prediction.device_disagrees


@pytest.mark.django_db
def test_a_disagreement_goes_first_in_the_review_queue(
    user_client, make_prediction, user, media_root
):
    make_prediction(user, label="usd_5", confidence=0.31)  # unsure: normally first
    # The tiny model never says $100 with this photo's answer as device answer
    # unless both agree; the device claims whatever the server did not say.
    data = {"image": uploaded(image_bytes(224, 224)), **device_fields()}
    first = user_client.post("/live/save/", data).json()
    saved = Prediction.objects.get(pk=first["id"])
    if not saved.device_disagrees:
        other = "usd_100" if saved.answer != "usd_100" else "usd_1"
        data = {"image": uploaded(image_bytes(224, 224)), **device_fields(device_answer=other)}
        saved = Prediction.objects.get(pk=user_client.post("/live/save/", data).json()["id"])
    assert saved.device_disagrees
    assert selectors.prediction_list_for_review().first() == saved


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"device_label": "eur_20"}, "eur_20"),
        ({"device_confidence": "1.5"}, "1"),
        ({"device_model_version": ""}, "required"),
    ],
)
def test_bad_device_answers_are_refused_and_nothing_is_stored(
    user_client, media_root, overrides, message
):
    data = {"image": uploaded(image_bytes(224, 224)), **device_fields(**overrides)}
    response = user_client.post("/live/save/", data)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert not Prediction.objects.exists()
    assert not any(media_root.rglob("*.*"))


@pytest.mark.django_db
def test_a_file_that_is_not_a_photo_is_refused(user_client, media_root):
    data = {"image": uploaded(b"not a photo at all", "x.jpg"), **device_fields()}
    response = user_client.post("/live/save/", data)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not Prediction.objects.exists()


@pytest.mark.django_db
def test_unwritable_media_is_a_json_503_and_nothing_is_stored(user_client, media_root):
    # A file where the directory should be: the frame cannot be stored.
    (media_root / "thumbnails").write_text("in the way")
    data = {"image": uploaded(image_bytes(224, 224)), **device_fields()}
    response = user_client.post("/live/save/", data)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert not Prediction.objects.exists()
    assert [p for p in media_root.rglob("*") if p.is_file()] == [media_root / "thumbnails"]


@pytest.mark.django_db
def test_saving_counts_against_the_upload_rate(user_client, settings, media_root):
    settings.CLASSIFIER_UPLOAD_RATE = "1/h"
    for expected in (201, 429):
        data = {"image": uploaded(image_bytes(224, 224)), **device_fields()}
        response = user_client.post("/live/save/", data)
        assert response.status_code == expected
    assert int(response["Retry-After"]) > 0


# In the browser ----------------------------------------------------------------------


def missing(what):
    if os.environ.get("CI"):
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture
def live_model(settings, use_predictor):
    """The served model (models/, or USBILLS_LIVE_TEST_MODELS), active and loaded."""
    from classifier.ml.predictor import Predictor

    models = Path(os.environ.get("USBILLS_LIVE_TEST_MODELS") or SHIPPED_MODELS)
    if not (models / "CURRENT").is_file():
        missing(f"no served model: {models}/CURRENT is missing")
    predictor = Predictor.load(models, num_threads=1)
    reason = browser_refusal(str(predictor.path))
    if reason is not None:
        pytest.skip(f"the served model {predictor.version} cannot run in the browser: {reason}")
    settings.CLASSIFIER_MODELS_DIR = models
    use_predictor(predictor)
    services.model_version_sync()
    return predictor


def pick(predictor, dataset_dir, candidates, label):
    """The first photo the served model gives this label with confidence, as RGB."""
    for name in candidates:
        path = dataset_dir / name
        if path.is_file():
            result = predictor.predict(path.read_bytes())
            if result.label == label and result.confidence >= max(0.8, predictor.threshold):
                return Image.open(path).convert("RGB")
    pytest.skip(f"the served model is sure of none of {candidates}")


def to_i420(img: Image.Image) -> bytes:
    """One video frame: BT.601 limited-range Y, then U and V at half size."""
    rgb = np.asarray(img.resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR), dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255

    def half(c):
        return c.reshape(HEIGHT // 2, 2, WIDTH // 2, 2).mean(axis=(1, 3))

    planes = [y, half(u), half(v)]
    return b"".join(np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes() for p in planes)


def write_y4m(path: Path, scenes: list[tuple[bytes, int]]) -> None:
    """A YUV4MPEG2 file: the header, then each scene's frame repeated for its seconds."""
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for frame, seconds in scenes:
            for _ in range(seconds * FPS):
                out.write(b"FRAME\n")
                out.write(frame)


@pytest.fixture
def camera_video(tmp_path, live_model, dataset_dir):
    """A few seconds of nothing (a dim, flat table), then a $20, then a foreign note."""
    note = pick(live_model, dataset_dir, TWENTIES, "usd_20")
    foreign = pick(live_model, dataset_dir, FOREIGN, "not_a_bill")
    rng = np.random.default_rng(0)
    table = np.full((HEIGHT, WIDTH, 3), 70, np.float32) + rng.normal(0, 2, (HEIGHT, WIDTH, 1))
    nothing = Image.fromarray(np.clip(table, 0, 255).astype(np.uint8))
    path = tmp_path / "camera.y4m"
    write_y4m(
        path,
        [(to_i420(nothing), NOTHING_S), (to_i420(note), NOTE_S), (to_i420(foreign), FOREIGN_S)],
    )
    return path


@pytest.fixture
def session(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def launch(playwright, video: Path, *, allow_camera=True):
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-sync",
        "--disable-background-networking",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    if allow_camera:  # else the camera is refused as when the user says no
        args.append("--use-fake-ui-for-media-stream")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)


def open_live(context, url):
    page = context.new_page()
    console = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"error: {e}"))
    page.goto(url + "/live/")
    wait_ready(page, console)
    page.console = console
    return page


def wait_ready(page, console=None):
    try:
        page.wait_for_function(
            "window.usbillsLive && window.usbillsLive.timings.ready", timeout=60_000
        )
    except Exception:
        status = page.locator("#live-status").inner_text()
        error = page.locator("#live-error").inner_text()
        pytest.fail(f"the live page did not get ready: {status!r} {error!r} {console}")


def spoken(page):
    return [s["text"] for s in page.evaluate("usbillsLive.spoken")]


def statuses(page):
    return [s["text"] for s in page.evaluate("usbillsLive.statuses")]


def wait_status(page, text, timeout=30_000):
    """Until the status line says text (the latest announcement)."""
    page.wait_for_function(
        "text => usbillsLive.statuses.length && usbillsLive.statuses.at(-1).text === text",
        arg=text,
        timeout=timeout,
    )


def wait_spoken(page, text, count=1, timeout=30_000):
    page.wait_for_function(
        "([text, count]) => usbillsLive.spoken.filter(s => s.text === text).length >= count",
        arg=[text, count],
        timeout=timeout,
    )


def measure(page) -> dict:
    """Frames per second over the stream, note-to-speech delay and start time."""
    return page.evaluate(
        """() => {
      const r = usbillsLive, frames = r.frames.filter(f => f.label !== null);
      const span = frames.length > 1 ? (frames.at(-1).t - frames[0].t) / 1000 : 0;
      // The note appears with the first frame that is not flat; speech starts
      // when the page hands its answer to the synthesiser.
      const first = r.frames.find(f => f.key === "usd_20");
      const firstSeen = r.frames.find(f => f.label !== null);
      const said = r.spoken.find(s => s.text === "$20");
      const ms = frames.map(f => f.ms).sort((a, b) => a - b);
      return {
        fps: (frames.length - 1) / span,
        inference_ms_median: ms[Math.floor(ms.length / 2)],
        note_to_speech_ms: said.t - (firstSeen.t - firstSeen.ms),
        first_sure_to_speech_ms: said.t - (first.t - first.ms),
        ready_ms: r.timings.ready,
        backend: r.backend,
      };
    }"""
    )


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_live_mode_in_chromium_with_a_camera_stream(
    live_server, live_model, camera_video, session, user
):
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    if not RUNTIME.is_file() or not AXE.is_file():
        missing("node_modules lacks @litertjs/core or axe-core: run `npm ci`")
    sync_api = pytest.importorskip("playwright.sync_api")
    url = live_server.url
    figures = {}
    # Database work waits until Playwright is done: inside its sync API it
    # would run in Playwright's event loop.
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright, camera_video)
        context = browser.new_context(viewport={"width": 390, "height": 844})
        context.set_default_timeout(30_000)
        context.add_cookies([{"name": "sessionid", "value": session, "url": url}])

        # First visit, cold: nothing cached.
        page = open_live(context, url)
        figures["cold"] = measure_start(page)
        assert "Ready" in page.locator("#live-status").inner_text()
        page.click("#live-toggle")
        wait_status(page, "Camera on. Looking")
        wait_spoken(page, "$20")
        page.click("#live-save")
        wait_spoken(page, "Not a US note")
        # In order: the $20 once, then "not a US note"; nothing said while
        # the camera saw nothing.
        assert spoken(page)[:2] == ["$20", "Not a US note"]
        # The status line (an aria-live region) announced the same, in order.
        answers = [s for s in statuses(page) if s.endswith(". Looking.")]
        assert answers[:2] == ["$20. Looking.", "Not a US note. Looking."]
        # Each preceded by its own cue (a vibration and a tone).
        assert page.evaluate("usbillsLive.cues.slice(0, 2)") == ["note", "not a note"]
        assert page.locator("#live-answer").inner_text() == "Not a US note"
        page.wait_for_function("usbillsLive.saves.length === 1")
        saved = page.evaluate("usbillsLive.saves[0]")
        assert saved["answer"] == "usd_20"
        assert saved["agrees"] is True
        assert any(s.startswith("Saved. The server agrees: $20") for s in statuses(page))
        figures["stream"] = measure(page)

        # Accessible: axe finds nothing serious on the running page, in portrait.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.add_script_tag(path=str(AXE))
        violations = page.evaluate(
            """async () => (await axe.run(document, {runOnly: {type: "tag",
              values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}))
              .violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))"""
        )
        assert not [v for v in violations if v["impact"] in ("serious", "critical")], violations
        # Landscape: nothing scrolls sideways and the big control stays in view.
        page.set_viewport_size({"width": 844, "height": 390})
        assert page.evaluate("document.documentElement.scrollWidth") <= 844
        assert page.locator("#live-toggle").bounding_box()["height"] >= 60
        page.click("#live-toggle")
        wait_status(page, "Camera off")
        # The offline copy is complete before the connection goes.
        page.wait_for_function("usbillsLive.timings.cached", timeout=60_000)

        # Warm: the second visit, from the caches.
        page.reload()
        wait_ready(page, page.console)
        figures["warm"] = measure_start(page)

        # Offline: the page, runtime and model come from the service worker.
        context.set_offline(True)
        page.reload()
        wait_ready(page, page.console)
        assert page.evaluate("fetch('/healthz').then(() => 'online', () => 'offline')") == "offline"
        figures["offline"] = measure_start(page)
        page.click("#live-toggle")
        wait_spoken(page, "$20", timeout=60_000)
        # A save made offline waits in the browser...
        page.click("#live-save")
        page.wait_for_function(
            "document.querySelector('#live-queue').textContent.includes('1 saved photo')"
        )
        assert page.evaluate("usbillsLive.saves.length") == 0
        # ...and is sent when the connection returns.
        context.set_offline(False)
        page.wait_for_function("usbillsLive.saves.length === 1", timeout=30_000)
        offline_save = page.evaluate("usbillsLive.saves[0]")
        assert page.locator("#live-queue").inner_text() == ""
        page.click("#live-toggle")
        context.close()
        browser.close()

    print("\nlive mode, measured:", json.dumps(figures, indent=1))
    rows = Prediction.objects.filter(upload__owner=user).order_by("pk")
    assert [(p.answer, p.device_answer, p.device_disagrees) for p in rows][:1] == [
        ("usd_20", "usd_20", False)
    ]
    assert rows.count() == 2
    assert rows.last().pk == offline_save["id"]
    assert rows.last().device_model_version == live_model.version
    stream = figures["stream"]
    # Loose bounds, so that a busy machine does not fail the test; the README
    # quotes what was measured on a quiet one.
    assert stream["fps"] >= 5
    assert stream["note_to_speech_ms"] <= 2000


def measure_start(page) -> float:
    """Milliseconds from the navigation to a compiled model."""
    return round(page.evaluate("usbillsLive.timings.ready"))


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_denied_camera_points_to_the_upload_page(live_server, live_model, session, tmp_path):
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    if not RUNTIME.is_file():
        missing("node_modules lacks @litertjs/core: run `npm ci`")
    sync_api = pytest.importorskip("playwright.sync_api")
    url = live_server.url
    write_y4m(tmp_path / "blank.y4m", [(to_i420(Image.new("RGB", (WIDTH, HEIGHT))), 1)])
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright, tmp_path / "blank.y4m", allow_camera=False)
        context = browser.new_context()
        context.add_cookies([{"name": "sessionid", "value": session, "url": url}])
        page = open_live(context, url)
        cdp = context.new_cdp_session(page)
        cdp.send(
            "Browser.setPermission",
            {"permission": {"name": "camera"}, "setting": "denied", "origin": url},
        )
        page.click("#live-toggle")
        notice = page.locator("#live-denied")
        notice.wait_for(state="visible")
        assert "did not allow" in notice.inner_text()
        assert notice.locator("a").get_attribute("href") == reverse("classifier:upload")
        wait_status(page, "Camera blocked")
        browser.close()


@pytest.fixture
def two_versions(tmp_path, live_model, settings):
    """The served model registered twice, as versions "live-a" (active) and "live-b"."""
    models = tmp_path / "models"
    models.mkdir()
    card = json.loads(live_model.path.with_suffix(".json").read_text())
    for name in ("live-a", "live-b"):
        (models / f"{name}.tflite").write_bytes(live_model.path.read_bytes())
        (models / f"{name}.json").write_text(json.dumps({**card, "version": name}))
    settings.CLASSIFIER_MODELS_DIR = models
    first, second = (
        services.model_version_register(model_path=models / f"{name}.tflite")
        for name in ("live-a", "live-b")
    )
    services.model_version_activate(version=first)
    return first, second


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_activation_reaches_an_open_page(live_server, two_versions, session, settings, tmp_path):
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    if not RUNTIME.is_file():
        missing("node_modules lacks @litertjs/core: run `npm ci`")
    sync_api = pytest.importorskip("playwright.sync_api")
    settings.CLASSIFIER_LIVE_POLL_SECONDS = 2
    first, second = two_versions
    write_y4m(tmp_path / "blank.y4m", [(to_i420(Image.new("RGB", (WIDTH, HEIGHT))), 1)])
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright, tmp_path / "blank.y4m")
        context = browser.new_context()
        context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
        page = open_live(context, live_server.url)
        assert page.evaluate("usbillsLive.version") == first.version
        # Activated elsewhere (the admin, a command): in a thread of its own,
        # as Playwright's sync API runs an event loop in this one.
        activation = threading.Thread(target=activate, args=[second])
        activation.start()
        activation.join()
        wait_status(page, f"Model updated to {second.version}", timeout=10_000)
        assert page.evaluate("usbillsLive.version") == second.version
        browser.close()


def activate(version):
    try:
        services.model_version_activate(version=version)
    finally:
        connection.close()
