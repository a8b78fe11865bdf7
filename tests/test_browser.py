"""The participant's and the organiser's paths through the web pages in headless Chromium
(Debian's package, driven by Playwright). Screenshots of each page land in the test's
temporary folder, kept by pytest when an assertion fails."""
from __future__ import annotations

import shutil

import pytest

from tests.servers import GradingServer
from tests.test_server import add, write_submission

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=(
    "no chromium: `apt-get install chromium` (as root; `make test` does it) enables the "
    "browser tests"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def hosted(organiser, tmp_path):
    server = GradingServer(organiser, f"sqlite:///{tmp_path / 'grading.db'}").start()
    yield server
    server.stop()


def test_participant_and_organiser_in_a_real_browser(browser, hosted, organiser, tmp_path):
    token = add(organiser, hosted.db_url, "alice", "red")
    csv = write_submission(organiser, tmp_path / "<img src=x onerror=alert(1)>.csv", flip=0.1)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    blocked = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)

    def shot(name):
        page.screenshot(path=shots / f"{name}.png", full_page=True)

    page.goto(hosted.url)
    shot("home")
    assert "Predict a film's genres" in page.inner_text("h1")
    page.goto(f"{hosted.url}/login")
    page.fill("#token", "wrong-token")
    page.click("button[type=submit]")
    assert "unknown or revoked token" in page.inner_text(".error")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/me")
    shot("me-empty")
    page.set_input_files("#file", str(csv))
    page.fill("#message", "<script>alert('x')</script> **bold**")
    page.click("form.upload button")
    result = page.locator("#result.scored")
    result.wait_for()
    shot("me-scored")
    assert "scored" in result.inner_text() and "rank 1" in result.inner_text()
    assert page.locator("main script").count() == 0
    assert "<script>alert('x')</script> **bold**" in page.inner_text("table.mine")
    assert "<img src=x onerror=alert(1)>.csv" in page.inner_text("table.mine")
    assert page.locator("main img").count() == 0
    page.click("table.mine button.toggle")
    page.wait_for_url("**/me")
    assert page.locator("tr.final").count() == 1
    shot("me-final")
    # An invalid file with a long name and a long list of problems: both wrap inside the page.
    header, *rows = csv.read_text().splitlines()
    bad = tmp_path / ("a" * 150 + ".csv")
    bad.write_text("\n".join([header] + [row.split(",")[0] + ",True" * header.count(",")
                                         for row in rows]) + "\n")
    page.set_input_files("#file", str(bad))
    page.click("form.upload button")
    page.locator("#result.invalid").wait_for()
    shot("me-invalid")
    assert "non-numeric values: row 1 column" in page.inner_text("table.mine .problems")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1200
    page.click("header button.link")        # log out
    page.wait_for_url(hosted.url + "/")
    page.goto(f"{hosted.url}/me")
    assert page.url.endswith("/login")
    page.goto(f"{hosted.url}/leaderboard")
    shot("leaderboard-public")
    assert "red" in page.inner_text("table.board") and page.locator("svg rect.bar").count() >= 1

    page.goto(f"{hosted.url}/login")
    page.fill("#token", hosted.admin_token)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin")
    shot("admin")
    assert "alice" in page.inner_text("main")
    assert page.input_value("input[name=max_upload_mb]") == "50"     # not 50.0
    page.select_option("select[name=metric]", "f1_micro")          # only the metrics ranked on
    page.fill("input[name=daily_limit]", "7")
    page.click("text=Save rules")
    page.wait_for_url("**/admin")
    assert page.input_value("select[name=metric]") == "f1_micro"
    assert page.input_value("input[name=daily_limit]") == "7"
    page.set_viewport_size({"width": 390, "height": 800})         # a phone: nothing wider
    for path in ("/admin", "/leaderboard", "/"):
        page.goto(hosted.url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
    shot("admin-phone")
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(f"{hosted.url}/admin")
    page.click("#close")
    page.wait_for_url("**/leaderboard")
    shot("leaderboard-private")
    assert page.locator("#private").is_visible() and not page.locator("#public").is_visible()
    assert "final standing" in page.inner_text("#private h2")
    assert "Ranked by f1_micro" in page.inner_text("main .lead")
    page.click("text=Public")
    assert page.locator("#public").is_visible()
    shot("leaderboard-public-tab")
    assert not blocked, blocked
