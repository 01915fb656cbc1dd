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
    page.click("summary:has-text('Wrong: it is a')")
    page.click("fieldset.choices button:has-text('$50')")
    page.wait_for_selector("text=You said it is a $50")
    page.click("nav >> text=History")
    page.check("#id_flagged")
    # count() does not wait: wait for the filtered page before counting.
    with page.expect_navigation():
        page.click("button:has-text('Filter')")
    assert page.locator("a.history-item").count() == 1
    assert "You flagged it: $50" in page.locator("a.history-item").inner_text()

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
