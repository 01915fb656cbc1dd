"""The whole journey in real headless Chromium against a live server and the
shipped model: sign up, upload a photo of a note, see its denomination, find
it in the history, flag it as wrong, and find it first in the admin's list.

Needs Debian's chromium at /usr/bin/chromium (`make test` installs it) and the
playwright package; playwright never downloads a browser of its own here.
"""

import os
import re
from pathlib import Path

import pytest

from classifier import services
from conftest import uploaded

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A flat, front-facing $20 from the training images; the shipped model knows it well.
NOTE = ("usd_20", "emerson5123-767d6c5bfc3c.jpg")
OTHER_PHOTOS = [("usd_1", 0), ("not_a_bill", 0)]
TIMEOUT_MS = 30_000
# Waits for an <img> to load (a lazy one too) and gives its width; 0 if it is broken.
LOADED_WIDTH = "img => img.decode().then(() => img.naturalWidth, () => 0)"


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def note_photo(dataset_dir):
    label, name = NOTE
    photo = dataset_dir / label / name
    if not photo.is_file():
        pytest.skip(f"the test photo {label}/{name} is not in {dataset_dir}")
    return photo


@pytest.fixture
def earlier_uploads(shipped_predictor, use_predictor, dataset_dir, staff_user):
    """Someone else's earlier uploads, which nobody flagged.

    Made before the browser starts: database work done inside Playwright's
    sync API would run in another context and leave its connection open.
    """
    use_predictor(shipped_predictor)
    return [
        services.upload_create(user=staff_user, file=uploaded(path.read_bytes(), path.name))
        for path in (
            sorted((dataset_dir / label).glob("*.jpg"))[index] for label, index in OTHER_PHOTOS
        )
    ]


def test_sign_up_upload_see_the_note_flag_it_and_review_it(
    live_server, note_photo, earlier_uploads, staff_user, page
):
    label = NOTE[0]
    photo = note_photo
    url = live_server.url

    # Sign up.
    page.goto(f"{url}/accounts/signup/")
    page.fill("#id_username", "walter")
    page.fill("#id_password1", "a-long-browser-password-1")
    page.fill("#id_password2", "a-long-browser-password-1")
    page.click("button:has-text('Sign up')")
    page.wait_for_url(f"{url}/")

    # Upload: the preview appears, then the working state, then the result.
    page.set_input_files("#id_image", str(photo))
    page.wait_for_selector("#preview:not([hidden])")
    page.click("#submit-button")
    page.wait_for_url(re.compile(r".*/predictions/\d+/$"))
    prediction_id = int(re.search(r"/predictions/(\d+)/$", page.url).group(1))
    answer = page.locator("[data-answer]")
    assert answer.get_attribute("data-answer") == label
    assert answer.locator(".answer-label").inner_text() == "$20"
    assert page.locator("ol.bars li").count() == 3
    assert page.locator(".result-photo img").evaluate(LOADED_WIDTH) > 0

    # History.
    page.click("nav >> text=History")
    page.wait_for_url(f"{url}/predictions/")
    item = page.locator(f'a.history-item[href="/predictions/{prediction_id}/"]')
    assert item.locator(".history-answer").inner_text() == "$20"
    assert item.locator("img").evaluate(LOADED_WIDTH) > 0

    # Flag it as wrong.
    item.click()
    page.wait_for_url(f"{url}/predictions/{prediction_id}/")
    page.click("summary:has-text('Wrong: it is')")
    page.click("fieldset.choices button:has-text('$50')")
    page.wait_for_selector("text=You said: $50.")
    page.click("nav >> text=History")
    page.check("#id_flagged")
    # count() does not wait: wait for the filtered page before counting.
    with page.expect_navigation():
        page.click("button:has-text('Filter')")
    assert page.locator("a.history-item").count() == 1
    assert "You said: $50" in page.locator("a.history-item").inner_text()

    # A reviewer sees it first in the admin.
    page.click("button:has-text('Log out')")
    page.wait_for_url(re.compile(r".*/accounts/login/"))
    page.fill("#id_username", staff_user.username)
    page.fill("#id_password", "a-long-test-password")
    page.click("button:has-text('Log in')")
    page.goto(f"{url}/admin/classifier/prediction/")
    first_row = page.locator("#result_list tbody tr").first
    assert first_row.locator("input[name=_selected_action]").get_attribute("value") == str(
        prediction_id
    )
    assert "Wrong: $50" in first_row.inner_text()
    assert "walter" in first_row.inner_text()
    assert page.locator("#result_list tbody tr").count() == 1 + len(earlier_uploads)


# Answers, phones, keys and reviewing --------------------------------------------

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# Notes every text the upload progress shows, across the page change that follows.
RECORD_PROGRESS = """
document.addEventListener("DOMContentLoaded", () => {
  const text = document.getElementById("progress-text");
  if (!text) return;
  new MutationObserver(() => {
    const seen = JSON.parse(sessionStorage.getItem("progress") || "[]");
    seen.push(text.textContent);
    sessionStorage.setItem("progress", JSON.stringify(seen));
  }).observe(text, {childList: true, characterData: true, subtree: true});
});
window.__spoken = [];
if (window.speechSynthesis) {
  window.speechSynthesis.speak = (u) => { window.__spoken.push(u.text); };
}
"""
# The bytes and the pixel size of an image the page may fetch.
FETCH_IMAGE = """async (url) => {
  const blob = await (await fetch(url)).blob();
  const bitmap = await createImageBitmap(blob);
  return {bytes: blob.size, width: bitmap.width, height: bitmap.height};
}"""


def _session(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _context(browser, live_server, session, viewport=PHONE, touch=True):
    context = browser.new_context(viewport=viewport, has_touch=touch, is_mobile=touch)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
    context.add_init_script(RECORD_PROGRESS)
    return context


def _box(page, selector):
    return page.locator(selector).first.bounding_box()


@pytest.fixture
def answer_states(user, make_prediction):
    """One prediction in each band, and alice's session; made before the browser."""
    return {
        "session": _session(user),
        "sure": make_prediction(user, label="usd_5", confidence=0.99),
        "unsure": make_prediction(user, label="usd_50", confidence=0.66),
        "unknown": make_prediction(user, label="usd_5", confidence=0.31),
        "not_a_note": make_prediction(user, label="not_a_bill", confidence=0.99),
    }


def test_sure_unsure_and_no_answer_look_and_sound_different(live_server, answer_states, browser):
    context = _context(browser, live_server, answer_states["session"])
    page = context.new_page()
    seen = {}
    for band in ("sure", "unsure", "unknown", "not_a_note"):
        page.goto(live_server.url + answer_states[band].get_absolute_url())
        heading = page.locator("h1.answer")
        assert heading.get_attribute("data-band") == band
        page.wait_for_selector("#speak-button")
        page.click("#speak-button")
        seen[band] = {
            "text": heading.inner_text(),
            "look": heading.evaluate(
                "h => [getComputedStyle(h).backgroundColor,"
                " getComputedStyle(h.querySelector('.answer-label')).color]"
            ),
            "spoken": page.evaluate("window.__spoken")[-1],
        }
        # On a phone the answer comes before the photo.
        assert _box(page, "h1.answer")["y"] < _box(page, ".result-photo img")["y"]
    context.close()

    assert seen["sure"]["text"].startswith("$5")
    assert "Might be $50; check it" in seen["unsure"]["text"]
    assert "Can't identify this" in seen["unknown"]["text"]
    assert "This doesn't look like a US note" in seen["not_a_note"]["text"]
    assert seen["sure"]["spoken"] == "$5 note. 99% sure."
    assert seen["unsure"]["spoken"].startswith("Not sure. It might be a $50 note")
    assert seen["unknown"]["spoken"].startswith("Can't identify this.")
    assert seen["not_a_note"]["spoken"] == "This doesn't look like a US note."
    # Three looks: sure, unsure, and no answer (the two kinds of none share one).
    looks = {band: tuple(s["look"]) for band, s in seen.items()}
    assert len({looks["sure"], looks["unsure"], looks["unknown"]}) == 3


@pytest.fixture
def phone_photo(dataset_dir, tmp_path):
    """A 12-megapixel JPEG, as a phone camera writes it."""
    from PIL import Image

    label, name = NOTE
    path = tmp_path / "IMG_0001.jpg"
    with Image.open(dataset_dir / label / name) as img:
        img.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC).save(path, quality=90)
    return path


@pytest.fixture
def user_session(user):
    return _session(user)


def test_a_phone_photo_is_shrunk_before_upload_and_shown_small(
    live_server, user_session, phone_photo, browser
):
    context = _context(browser, live_server, user_session)
    page = context.new_page()
    page.goto(live_server.url + "/")

    # On a touch screen there is nothing to drag; the menu keeps to one line.
    assert not page.locator("#dropzone-hint").is_visible()
    tops = page.locator(".site-header nav > *").evaluate_all(
        "items => items.map(e => Math.round(e.getBoundingClientRect().top))"
    )
    assert max(tops) - min(tops) <= 4, tops  # one line; "Log out" is not alone on a second
    # No file: the app's own message, not the browser's bubble.
    page.click("#submit-button")
    assert page.locator("#client-error").inner_text() == "Choose a photo first."

    page.set_input_files("#id_image", str(phone_photo))
    page.wait_for_selector("#preview:not([hidden])")
    size = page.locator("#file-name .file-size")
    assert size.evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"
    displayed = []
    page.on(
        "response",
        lambda r: displayed.append(len(r.body())) if "/display/" in r.url else None,
    )
    page.click("#submit-button")
    page.wait_for_url(re.compile(r".*/predictions/\d+/$"))
    page.locator(".result-photo img").evaluate(LOADED_WIDTH)

    progress = page.evaluate("JSON.parse(sessionStorage.getItem('progress') || '[]')")
    assert "Uploading: 100%" in progress, progress
    pk = re.search(r"/predictions/(\d+)/$", page.url).group(1)
    original = page.evaluate(FETCH_IMAGE, f"/predictions/{pk}/photo/")
    display = page.evaluate(FETCH_IMAGE, f"/predictions/{pk}/display/")
    context.close()

    # What reached the server was shrunk in the browser: 1600 px, not 4000.
    assert max(original["width"], original["height"]) == 1600, original
    assert original["bytes"] < phone_photo.stat().st_size / 2
    # The page itself fetched only the small copy.
    assert displayed, "the result page did not fetch the display copy"
    assert max(displayed) <= 150 * 1024, displayed
    assert display["bytes"] <= 150 * 1024
    print(
        f"phone photo {phone_photo.stat().st_size} B 4000x3000 -> uploaded {original['bytes']} B "
        f"{original['width']}x{original['height']}; display copy {display['bytes']} B "
        f"{display['width']}x{display['height']}"
    )


def test_the_api_keys_page_fits_a_phone(live_server, user_session, browser):
    context = _context(browser, live_server, user_session)
    page = context.new_page()
    page.goto(live_server.url + "/account/api-keys/")
    page.fill("#token-name", "my phone's shortcut")
    with page.expect_navigation():
        page.click("button:has-text('Make a key')")

    key = page.locator("code[data-key]").inner_text()
    assert key.startswith("usb_")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for selector in ("code[data-key]", ".new-key pre", "a:has-text('Revoke')"):
        box = _box(page, selector)
        assert box["x"] >= 0, selector
        assert box["x"] + box["width"] <= PHONE["width"], (selector, box)

    # A reload makes no second key and no longer shows this one.
    page.reload()
    assert page.locator("code[data-key]").count() == 0
    assert page.locator(".token-list li").count() == 1

    # Revoking asks first; a revoked key leaves the list.
    page.click("a:has-text('Revoke')")
    assert "Revoke the key" in page.locator("h1").inner_text()
    with page.expect_navigation():
        page.click("button:has-text('Revoke the key')")
    assert page.locator(".token-list li").count() == 0
    assert "1 revoked key not shown" in page.inner_text("main")
    context.close()


@pytest.fixture
def review_queue(user, staff_user, make_prediction):
    flagged = make_prediction(user, label="usd_10", confidence=0.95)
    services.prediction_set_feedback(prediction=flagged, user=user, label="usd_100")
    unsure = make_prediction(user, label="usd_50", confidence=0.7)
    make_prediction(user, label="usd_20", confidence=0.99)  # sure: not in the queue
    return {"session": _session(staff_user), "flagged": flagged, "unsure": unsure}


def test_review_the_queue_with_the_keyboard(live_server, review_queue, browser):
    context = _context(browser, live_server, review_queue["session"], DESKTOP, touch=False)
    page = context.new_page()

    # At 1280 px the list fits, its last column included.
    page.goto(live_server.url + "/admin/classifier/prediction/")
    assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
    assert _box(page, "#result_list th.column-created")["x"] < DESKTOP["width"]

    page.goto(live_server.url + "/admin/")
    assert "2 photos waiting for review" in page.inner_text("#content")
    page.click("text=Start reviewing")
    page.wait_for_url(re.compile(rf".*/review/{review_queue['flagged'].pk}/$"))
    # The photo and every choice on one 800 px screen.
    photo = _box(page, ".review-photo img")
    last = _box(page, ".review-choices button[data-key='s']")
    assert photo["height"] > 200
    assert photo["y"] + photo["height"] <= DESKTOP["height"]
    assert last["y"] + last["height"] <= DESKTOP["height"]
    assert "Said: $100" in page.inner_text(".review-panel")

    page.keyboard.press("a")  # accept the user's label
    page.wait_for_url(re.compile(rf".*/review/{review_queue['unsure'].pk}/$"))
    assert "reviewed as $100" in page.inner_text("body")
    page.keyboard.press("6")  # $50
    page.wait_for_selector("text=The review queue is empty")
    page.goto(
        live_server.url + f"/admin/classifier/prediction/{review_queue['unsure'].pk}/history/"
    )
    assert "Reviewed label: none → $50 (review screen)" in page.inner_text("#content")
    context.close()


SCREENSHOTS = os.environ.get("USBILLS_SCREENSHOTS")


@pytest.fixture
def screenshot_data(shipped_predictor, use_predictor, dataset_dir, note_photo, user, staff_user):
    """Real photos through the shipped model: the note for the result page, and a
    photo its owner disputed at the head of the review queue."""
    use_predictor(shipped_predictor)
    note = services.upload_create(
        user=user, file=uploaded(note_photo.read_bytes(), note_photo.name)
    )
    disputed_photo = sorted((dataset_dir / "usd_5").glob("*.jpg"))[1]
    disputed = services.upload_create(
        user=user, file=uploaded(disputed_photo.read_bytes(), disputed_photo.name)
    )
    wrong = "usd_100" if disputed.label != "usd_100" else "usd_50"
    services.prediction_set_feedback(prediction=disputed, user=user, label=wrong)
    return {"note": note, "user": _session(user), "staff": _session(staff_user)}


@pytest.mark.skipif(not SCREENSHOTS, reason="set USBILLS_SCREENSHOTS=1 to redraw docs/*.png")
def test_redraw_the_readme_screenshots(live_server, screenshot_data, browser):
    from conftest import REPO

    context = _context(browser, live_server, screenshot_data["user"], DESKTOP, touch=False)
    page = context.new_page()
    page.goto(live_server.url + screenshot_data["note"].get_absolute_url())
    page.locator(".result-photo img").evaluate(LOADED_WIDTH)
    page.screenshot(path=str(REPO / "docs" / "result.png"), full_page=True)
    context.close()

    context = _context(browser, live_server, screenshot_data["staff"], DESKTOP, touch=False)
    page = context.new_page()
    page.goto(live_server.url + "/admin/classifier/prediction/review/")
    page.locator(".review-photo img").evaluate(LOADED_WIDTH)
    page.screenshot(path=str(REPO / "docs" / "review.png"))
    context.close()
