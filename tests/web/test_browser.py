"""The pages in a real browser: Debian's Chromium, driven by Playwright, against `credo serve`.

One story, in order: a subject sees a denied check, opens its cause and
appeals; a reviewer (signed in by a one-time link from `credo token create
--link`) overturns it; the subject's check now says allowed. An agency uploads
a file with a bad row and fixes it from the quarantine; the public lookup
finds a defaulter; the dashboard draws its charts. Every page is saved as a
screenshot under test-output/screenshots/, at desktop and at phone width.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from web.support import ORG_NAME, Server, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


class Tab:
    """A browser page that fails the test on a console error (a CSP refusal, a script error)."""

    def __init__(self, browser: Any, server: Server, viewport: dict[str, int], lang: str = "en") -> None:
        self.context = browser.new_context(
            viewport=viewport, locale="zh-CN" if lang == "zh" else "en-US", accept_downloads=True
        )
        self.page = self.context.new_page()
        self.server = server
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def go(self, path: str) -> Any:
        return self.page.goto(self.server.url + path)

    def sign_in(self, token: str) -> None:
        self.go("/login")
        self.page.get_by_label("Token").fill(token)
        self.page.get_by_role("button", name="Sign in", exact=True).click()
        self.page.wait_for_load_state()

    def check_page(self) -> None:
        """Every control has a label; nothing is wider than the screen; no console errors."""
        unlabelled = self.page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                .filter(e => e.type !== 'hidden' && !e.closest('[hidden]'))
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                .map(e => e.name || e.id)"""
        )
        assert unlabelled == [], f"controls without a label on {self.page.url}: {unlabelled}"
        overflow = self.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{self.page.url} is {overflow}px wider than the screen"
        assert self.errors == [], self.errors

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Tab]:
    t = Tab(browser, server, DESKTOP)
    yield t
    t.close()


@pytest.fixture
def phone(browser: Any, server: Server) -> Iterator[Tab]:
    t = Tab(browser, server, PHONE)
    yield t
    t.close()


def relying_party_asks(server: Server, subject: str) -> dict[str, Any]:
    res = httpx.post(
        f"{server.url}/api/v1/checks",
        json=[{"subject": subject, "measure": "air-travel"}],
        headers={"Authorization": f"Bearer {server.story.tokens['party']}"},
        timeout=10,
    )
    assert res.status_code == 200, res.text
    answer: dict[str, Any] = res.json()[0]
    return answer


def cli_link(server: Server, *args: str) -> str:
    """`credo token create ... --link` against the server's registry; returns the printed link."""
    env = {
        **os.environ,
        "CREDO_DATABASE_URL": f"sqlite:///{server.root / 'credo.db'}",
        "CREDO_SIGNING_KEY_PATH": str(server.root / "keys" / "log.key"),
    }
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("credo")),
            "token",
            "create",
            *args,
            "--link",
            "--base-url",
            server.url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    found = re.search(r"(http://\S+/login/link/\S+)", out)
    assert found, out
    return found.group(1)


def test_a_subject_appeals_a_denied_check_and_a_reviewer_overturns_it(
    browser: Any, server: Server, tab: Tab
) -> None:
    story = server.story
    denied = relying_party_asks(server, story.person)
    assert denied["decision"] == "denied"
    theirs = relying_party_asks(server, story.other)

    # The subject signs in and finds the denied check.
    tab.sign_in(story.tokens["person"])
    page = tab.page
    assert page.url.endswith("/me")
    page.get_by_role("heading", name="Your credit file").wait_for()
    tab.check_page()
    shot(page, "01-subject-overview")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Who checked me").click()
    # count() does not wait: a click returns once the navigation commits, before the page is parsed
    page.get_by_role("heading", name="Who checked me").wait_for()
    assert page.get_by_role("cell", name="denied").count() >= 1
    tab.check_page()
    shot(page, "02-subject-checks")
    page.get_by_role("link", name=denied["ref"]).click()
    page.get_by_role("heading", name="Why you were refused").wait_for()
    assert "CN.DEFAULTER" in page.content()
    assert page.locator(".answer-then").inner_text().strip() == "denied"
    tab.check_page()
    shot(page, "03-subject-check-denied-cause")

    # URL tampering: the other subject's check is not there for this subject.
    res = tab.go(f"/me/checks/{theirs['ref']}")
    assert res.status == 404
    assert story.other not in page.content()
    shot(page, "04-subject-tampered-url-404")
    tab.errors.clear()  # the browser logs the 404 this step asked for

    # File the appeal from the cause.
    tab.go(f"/me/checks/{denied['ref']}")
    page.get_by_role("link", name="Appeal this listing").click()
    page.get_by_label("Your statement: what is wrong with this record?").fill(
        "The judgment was performed in full; the court's receipt is attached."
    )
    page.get_by_label("Evidence links (one per line, optional)").fill("https://example.invalid/receipt.pdf")
    tab.check_page()
    shot(page, "05-subject-appeal-form")
    page.get_by_role("button", name="File the appeal").click()
    page.get_by_role("heading", name=re.compile(r"Appeal \d+")).wait_for()
    appeal_url = page.url
    assert "open: waiting for a reviewer" in page.content()
    shot(page, "06-subject-appeal-filed")

    # A reviewer signs in with a one-time link and overturns.
    reviewer = Tab(browser, server, DESKTOP)
    try:
        link = cli_link(server, "--role", "reviewer", "--jurisdiction", "CN", "--label", "Reviewer Chen")
        reviewer.page.goto(link)
        reviewer.page.get_by_role("button", name="Sign in").click()
        reviewer.page.get_by_role("heading", name=re.compile("Appeals queue")).wait_for()
        reviewer.check_page()
        shot(reviewer.page, "07-reviewer-queue")
        appeal_id = appeal_url.rsplit("/", 1)[1]
        reviewer.page.get_by_role("link", name=f"appeal {appeal_id}", exact=True).click()
        assert "court's receipt" in reviewer.page.content()
        reviewer.check_page()
        shot(reviewer.page, "08-reviewer-appeal")
        reviewer.page.locator('input[name="outcome"][value="overturned"]').check()
        reviewer.page.get_by_label("Written reasons (shown to the subject)").fill(
            "The enforcement court confirmed the judgment was performed on the day of the listing."
        )
        reviewer.page.get_by_role("button", name="Decide").click()
        reviewer.page.get_by_text(f"Appeal {appeal_id} decided.").wait_for()
        shot(reviewer.page, "09-reviewer-decided")
        # A used link does not sign in again.
        assert reviewer.page.goto(link).status == 410
    finally:
        reviewer.close()

    # The subject's check now says allowed.
    page.goto(appeal_url)
    assert "overturned" in page.content()
    shot(page, "10-subject-appeal-overturned")
    tab.go(f"/me/checks/{denied['ref']}")
    assert page.locator(".answer-today").inner_text().strip() == "allowed"
    shot(page, "11-subject-check-now-allowed")
    again = relying_party_asks(server, story.person)
    assert again["decision"] == "allowed"
    tab.go("/me/checks")
    assert page.get_by_role("row").filter(has_text=again["ref"]).get_by_text("allowed").count() == 1
    tab.check_page()


def test_an_agency_uploads_a_file_with_a_bad_row_and_fixes_it(tab: Tab, tmp_path: Path) -> None:
    story = tab.server.story
    upload = tmp_path / "week-47.csv"
    upload.write_text(
        "agency_ref,subject,rule,occurred_on,evidence\n"
        f"hz-47-1,{story.person},CN-ZJ-HZ.TRAFFIC-RED-LIGHT,2024-03-01,https://example.invalid/cam/1\n"
        "hz-47-2,110105194912310021,CN-ZJ-HZ.TRAFFIC-RED-LIGHT,2024-03-02,https://example.invalid/cam/2\n"
        f"hz-47-3,{story.other},CN-ZJ-HZ.TRAFFIC-NOT-YIELDING,2024-03-03,https://example.invalid/cam/3\n"
    )
    tab.sign_in(story.tokens["agency"])
    page = tab.page
    page.get_by_role("heading", name=re.compile("Agency console")).wait_for()
    tab.check_page()
    page.get_by_label("File of records (CSV, JSON Lines or Parquet)").set_input_files(str(upload))
    page.get_by_role("button", name="Upload", exact=True).click()
    result = page.locator(".upload-result")
    result.wait_for()
    assert result.locator(".n-accepted").inner_text() == "2"
    assert result.locator(".n-rejected").inner_text() == "1"
    assert "subject:" in result.inner_text()
    tab.check_page()
    shot(page, "12-agency-upload-result")
    page.get_by_role("link", name="Open the quarantine").first.click()
    page.get_by_role("heading", name="Quarantine").wait_for()
    row = page.get_by_role("row").filter(has_text="hz-47-2")
    assert row.count() == 1
    tab.check_page()
    shot(page, "13-agency-quarantine")
    row.get_by_role("link", name=re.compile("Fix and retry")).click()
    page.get_by_label("subject", exact=True).fill(story.other)
    tab.check_page()
    shot(page, "14-agency-fix")
    page.get_by_role("button", name="Send the corrected row").click()
    page.get_by_text(re.compile(r"Accepted as record \d+")).wait_for()
    tab.go("/agency/quarantine")
    assert page.get_by_role("row").filter(has_text="hz-47-2").count() == 0


def test_the_public_lookup_finds_a_defaulter_without_signing_in(tab: Tab, phone: Tab) -> None:
    story = tab.server.story
    page = tab.page
    # The first test's appeal took the person off the list; the other subject is still on it.
    tab.go("/public")
    page.get_by_label("Identifier or organisation name").fill(story.other)
    page.get_by_role("button", name="Search").click()
    page.get_by_text("Listed", exact=True).wait_for()
    tab.check_page()
    shot(page, "15-public-found-by-identifier")
    page.get_by_label("Identifier or organisation name").fill("示例贸易")
    page.get_by_role("button", name="Search").click()
    page.get_by_text(ORG_NAME).wait_for()
    assert story.organisation in page.content()
    shot(page, "16-public-found-by-name")
    phone.go(f"/public?list=CN.DEFAULTER&q={story.other}")
    phone.page.get_by_text("Listed", exact=True).wait_for()
    phone.check_page()
    shot(phone.page, "17-public-phone")


def test_keyboard_and_language(tab: Tab, browser: Any, server: Server) -> None:
    page = tab.page
    tab.go("/")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    page.get_by_role("button", name="简体中文").click()
    page.get_by_role("heading", name="credo 社会信用登记系统").wait_for()
    assert page.evaluate("() => document.documentElement.lang") == "zh-Hans"
    shot(page, "18-home-zh")
    page.get_by_role("button", name="English").click()
    page.get_by_role("heading", name="credo social-credit registry").wait_for()
    chinese = Tab(browser, server, PHONE, lang="zh")
    try:
        chinese.go("/login")
        chinese.page.get_by_label("令牌").fill(server.story.tokens["person"])
        chinese.page.get_by_role("button", name="登录", exact=True).click()
        chinese.page.get_by_role("heading", name="您的信用档案").wait_for()
        chinese.check_page()
        shot(chinese.page, "19-subject-overview-phone-zh")
        for path, name in [
            ("/me/file", "20-subject-file-phone-zh"),
            ("/me/notices", "21-subject-notices-phone-zh"),
        ]:
            chinese.go(path)
            chinese.check_page()
            shot(chinese.page, name)
    finally:
        chinese.close()


def test_the_dashboard_renders_its_charts(tab: Tab, phone: Tab) -> None:
    tab.sign_in(tab.server.story.tokens["auditor"])
    page = tab.page
    assert page.url.endswith("/dashboard")
    page.wait_for_selector("html[data-charts-ready]")
    figures = page.locator("figure.chart").count()
    assert figures >= 7  # a chart per scheme with scored subjects, five of the ledger and appeals
    canvases = page.locator("canvas").count()
    # The story draws four (two schemes' scores, records, listings); the appeals' three are drawn
    # only when the appeal test ran first against this worker's server (xdist shares them out).
    assert canvases >= 4
    assert page.locator("figure.chart > p").count() == figures - canvases  # the others say why
    assert page.evaluate("() => Object.keys(window.credoCharts).length") == canvases
    # Each chart drew something: its canvas is not blank.
    blank = page.evaluate(
        """() => [...document.querySelectorAll('canvas')].filter(c => {
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              for (let i = 3; i < d.length; i += 4) { if (d[i] !== 0) return false; }
              return true; }).map(c => c.id)"""
    )
    assert blank == []
    tab.check_page()
    shot(page, "22-dashboard")
    phone.sign_in(phone.server.story.tokens["auditor"])
    phone.page.wait_for_selector("html[data-charts-ready]")
    phone.check_page()
    shot(phone.page, "23-dashboard-phone")
