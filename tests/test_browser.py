"""Open the report in headless Chromium: images decode, nothing is fetched,
no console error, no script runs.

Skipped when Playwright or Chromium is missing, except where
``EXPLAIN_ATTN_REQUIRE_BROWSER=1`` (CI), where that is a failure.
"""

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REQUIRED = os.environ.get("EXPLAIN_ATTN_REQUIRE_BROWSER") == "1"


def _sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if REQUIRED:
            pytest.fail("Playwright is required here but not installed.")
        pytest.skip("Playwright is not installed.")
    if not os.path.exists(CHROMIUM):
        if REQUIRED:
            pytest.fail(f"Chromium is required here but {CHROMIUM} is missing.")
        pytest.skip("Chromium is not installed.")
    return sync_playwright


def test_report_opens_offline_in_chromium(tiny_report):
    _, html_path, _ = tiny_report
    sync_playwright = _sync_playwright()
    requests, console_errors, dialogs, page_errors = [], [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 390, "height": 800})
            page.on("request", lambda request: requests.append(request.url))
            page.on(
                "console",
                lambda message: (
                    message.type == "error"
                    and console_errors.append(message.text)
                ),
            )
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on(
                "dialog",
                lambda dialog: (
                    dialogs.append(dialog.message),
                    dialog.dismiss(),
                ),
            )
            page.goto(html_path.as_uri())
            page.wait_for_load_state("load")
            widths = page.eval_on_selector_all(
                "img", "images => images.map(i => i.naturalWidth)"
            )
            text = page.inner_text("body")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
        finally:
            browser.close()

    assert widths and all(width > 0 for width in widths)
    fetched = [
        url for url in requests if not url.startswith(("data:", "file:"))
    ]
    assert fetched == []
    assert [url for url in requests if url.startswith("file:")] == [
        html_path.as_uri()
    ]
    assert console_errors == [] and page_errors == []
    assert dialogs == []
    assert "<script>alert(1)</script>" in text  # shown as text
    assert overflow <= 0  # readable on a phone: no sideways page scroll
