"""Open the report in headless Chromium: images decode, nothing is fetched,
no console error, no dialog (hostile names stay text); the explorer sorts,
filters and draws; without JavaScript every table still shows.

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


def _launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
    )


def _first_cells(page):
    return page.eval_on_selector_all(
        "#explorer-table tbody tr:not(.thumbnails)",
        "rows => rows.map("
        "r => [r.cells[0].textContent, r.cells[1].textContent])",
    )


def test_explorer_sorts_filters_and_draws_offline(tiny_report):
    _, html_path, _ = tiny_report
    sync_playwright = _sync_playwright()
    requests, errors = [], []
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.on(
                "console",
                lambda m: m.type == "error" and errors.append(m.text),
            )
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(html_path.as_uri())
            page.wait_for_load_state("load")
            classes = page.evaluate(
                "JSON.parse(document.getElementById('explorer-data')"
                ".textContent).classes"
            )
            before = _first_cells(page)
            page.click("#explorer-table th:has-text('#')")  # sort descending
            after = _first_cells(page)
            page.select_option("#explorer-class", "1")
            filtered = _first_cells(page)
            page.click("#explorer-table tbody tr >> nth=0")
            page.wait_for_function(
                "() => { const c = document.querySelectorAll("
                "'tr.thumbnails canvas'); if (c.length < 2) return false;"
                " const d = c[1].getContext('2d').getImageData(0, 0, "
                "c[1].width, c[1].height).data;"
                " return d.some((v, i) => i % 4 != 3 && v > 0); }",
                timeout=10_000,
            )
            canvases = page.locator("tr.thumbnails canvas").count()
        finally:
            browser.close()
    count = len(before)
    assert before[0][0] == "0" and after[0][0] == str(count - 1)
    assert {cell[1] for cell in filtered} == {classes[1]}
    assert 0 < len(filtered) < count
    assert canvases == 1 + 4  # the image, then each of the four maps
    assert [u for u in requests if not u.startswith(("data:", "file:"))] == []
    assert errors == []


def test_tables_show_without_javascript(tiny_report):
    _, html_path, _ = tiny_report
    sync_playwright = _sync_playwright()
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            context = browser.new_context(java_script_enabled=False)
            page = context.new_page()
            page.goto(html_path.as_uri())
            tables = page.locator("table:visible").count()
            findings = page.locator("#findings li").count()
            explorer_hidden = page.locator("#explorer-app").is_hidden()
            notice = page.inner_text("#explorer")
        finally:
            browser.close()
    assert tables >= 8
    assert findings >= 3
    assert explorer_hidden
    assert "The explorer needs JavaScript" in notice
