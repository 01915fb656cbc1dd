"""Accessibility in real headless Chromium: axe-core (from npm, run in the
page) on every page, at a phone's width; an upload done with the keyboard
only; the result announced in an aria-live region and spoken aloud.

Needs Debian's chromium and node_modules/axe-core (`make test` runs npm ci).
"""

import os
import re
from pathlib import Path

import pytest
from django.test import Client

from conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
PHONE = {"width": 360, "height": 740}
# WCAG 2.1 A and AA, and axe's best practices (landmarks, headings, ...).
AXE_RUN = """async () => {
  const result = await axe.run(document, {
    runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
  });
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5),
  }));
}"""
# Every call to the speech synthesiser is noted, then passed on to the real one.
RECORD_SPEECH = """
window.__spoken = [];
if (window.speechSynthesis) {
  const speak = window.speechSynthesis.speak.bind(window.speechSynthesis);
  window.speechSynthesis.speak = (u) => { window.__spoken.push(u.text); speak(u); };
}
"""


def missing(what, hint):
    message = f"{what} is missing: {hint}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser(pages):
    # After `pages`: database work inside Playwright's sync API would run in its event loop.
    if not CHROMIUM.exists():
        missing(CHROMIUM, "`make test` installs Debian's chromium")
    if not AXE.is_file():
        missing(AXE.relative_to(REPO), "`make test` runs npm ci")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def pages(live_server, user, make_prediction, settings):
    """The site's pages, signed in as alice; made before the browser starts."""
    settings.CLASSIFIER_UPLOAD_RATE = "1/h"
    answered = make_prediction(user, label="usd_20", confidence=0.97)
    unknown = make_prediction(user, label="usd_5", confidence=0.31)
    unsure = make_prediction(user, label="usd_50", confidence=0.66)
    no_note = make_prediction(user, label="not_a_bill", confidence=0.99)
    from classifier import services

    token, _ = services.api_token_create(user=user, name="a script with a long name")
    client = Client()
    client.force_login(user)
    return {
        "session": client.cookies["sessionid"].value,
        "signed_in": [
            ("upload", "/"),
            ("history", "/predictions/"),
            ("history filtered", "/predictions/?answer=usd_20&flagged=on"),
            ("result", f"/predictions/{answered.pk}/"),
            ("result unknown", f"/predictions/{unknown.pk}/"),
            ("result unsure", f"/predictions/{unsure.pk}/"),
            ("result not a note", f"/predictions/{no_note.pk}/"),
            ("api keys", "/account/api-keys/"),
            ("revoke a key", f"/account/api-keys/{token.pk}/revoke/"),
            ("api docs", "/api/v1/docs/"),
            ("password change", "/accounts/password_change/"),
            ("not found", "/predictions/999999/"),
        ],
        "anonymous": [
            ("login", "/accounts/login/"),
            ("sign-up", "/accounts/signup/"),
            ("password reset", "/accounts/password_reset/"),
        ],
        "answered": answered,
    }


def new_page(browser, live_server, session=None, viewport=PHONE):
    context = browser.new_context(viewport=viewport, has_touch=True, is_mobile=True)
    context.set_default_timeout(30_000)
    if session:
        context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
    context.add_init_script(RECORD_SPEECH)
    return context.new_page()


def check_page(page, name):
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(AXE_RUN)
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: {bad}"
    # Nothing sideways-scrolls on a 360 px phone.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name} is {width} px wide at {PHONE['width']} px"
    # Every image has alt text; every form control a label.
    assert page.locator("img:not([alt])").count() == 0, name
    return violations


def test_every_page_passes_axe_at_a_phones_width(browser, live_server, pages):
    signed_in = new_page(browser, live_server, pages["session"])
    checked = []
    for name, path in pages["signed_in"]:
        response = signed_in.goto(live_server.url + path)
        assert response.status in (200, 404), (name, response.status)
        check_page(signed_in, name)
        checked.append(name)
    # A new key, shown once, on the keys page: nothing runs off a phone's screen.
    signed_in.goto(live_server.url + "/account/api-keys/")
    signed_in.fill("#token-name", "phone")
    with signed_in.expect_navigation():
        signed_in.click("button:has-text('Make a key')")
    assert signed_in.locator("code[data-key]").is_visible()
    check_page(signed_in, "api keys with a new key")
    checked.append("new key")
    # The 429 page: the second upload within the hour. With the script the
    # page says it in place; a browser without it gets the page of its own.
    signed_in.goto(live_server.url + "/")
    signed_in.set_input_files("#id_image", files=[_photo()])
    with signed_in.expect_navigation():
        signed_in.click("#submit-button")
    signed_in.goto(live_server.url + "/")
    signed_in.set_input_files("#id_image", files=[_photo()])
    signed_in.click("#submit-button")
    signed_in.wait_for_selector("#client-error:not([hidden])")
    assert "uploaded a lot of photos" in signed_in.locator("#client-error").inner_text()
    with signed_in.expect_navigation():
        signed_in.evaluate("document.getElementById('upload-form').submit()")
    assert signed_in.locator("h1").inner_text() == "Too many tries in a short time"
    check_page(signed_in, "too many uploads")
    checked.append("429")

    anonymous = new_page(browser, live_server)
    for name, path in pages["anonymous"]:
        assert anonymous.goto(live_server.url + path).status == 200
        check_page(anonymous, name)
        checked.append(name)
    assert len(checked) == 17


def _photo():
    from conftest import image_bytes

    return {"name": "note.jpg", "mimeType": "image/jpeg", "buffer": image_bytes(320, 200)}


def focused(page):
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " const l = e.labels && e.labels[0];"
        # A visually hidden input shows its focus on the label that stands in for it.
        " const s = getComputedStyle(e.getBoundingClientRect().width <= 1 && l ? l : e);"
        " return {id: e.id, tag: e.tagName, text: (e.innerText || '').trim(),"
        " outline: s.outlineStyle, width: parseFloat(s.outlineWidth)}; }"
    )


def tab_to(page, predicate, limit=30):
    for _ in range(limit):
        page.keyboard.press("Tab")
        state = focused(page)
        if predicate(state):
            # Visible focus: an outline on the control, or on the label standing in for it.
            assert state["outline"] != "none", state
            assert state["width"] >= 2, state
            return state
    raise AssertionError("keyboard focus never reached the control")


def test_upload_with_the_keyboard_only_and_hear_the_result(browser, live_server, pages):
    page = new_page(browser, live_server, pages["session"])
    page.goto(live_server.url + "/")

    # Tab to the photo picker; Space opens the file chooser, as in any browser.
    tab_to(page, lambda s: s["id"] == "id_image")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(files=[_photo()])
    page.wait_for_selector("#preview:not([hidden])")
    tab_to(page, lambda s: s["id"] == "submit-button")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert re.search(r"/predictions/\d+/$", page.url)

    # The answer is announced: a polite live region gets the sentence.
    announcer = page.locator("#announcer")
    assert announcer.get_attribute("aria-live") == "polite"
    page.wait_for_function("document.getElementById('announcer').textContent.length > 0")
    sentence = announcer.inner_text()
    assert sentence.startswith(("$", "Not sure.", "Can't identify", "This doesn't look")), sentence

    # "Speak result" by keyboard speaks that sentence.
    if not page.evaluate("'speechSynthesis' in window"):
        pytest.skip("this chromium has no speech synthesis")
    tab_to(page, lambda s: s["id"] == "speak-button")
    page.keyboard.press("Enter")
    assert page.evaluate("window.__spoken") == [sentence]

    # "Speak automatically" is off until chosen, then remembered.
    tab_to(page, lambda s: s["id"] == "speak-auto")
    page.keyboard.press("Space")
    assert page.is_checked("#speak-auto")
    page.goto(live_server.url + pages["answered"].get_absolute_url())
    page.wait_for_function("window.__spoken.length > 0")
    assert page.evaluate("window.__spoken") == ["$20 note. 97% sure."]
