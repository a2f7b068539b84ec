"""The README's screenshot: the top of the demo report, in headless Chromium.

Builds the demo report (trained models come from the cache or the
package, see `explain_attn.report.shipped`) into a temporary folder, or
takes a given ``--report``, and saves the first screen of the page (1280
x ``--height`` CSS pixels, 800 by default: a laptop) as a PNG. Refresh it
with the report:

    python -m benchmarks.screenshot --output docs/report_top.png

Needs Playwright and Chromium (``CHROMIUM``, default ``chromium`` on the
path); nothing is fetched from the network.
"""

import argparse
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["screenshot"]

CHROMIUM = (
    os.environ.get("CHROMIUM")
    or shutil.which("chromium")
    or ("/usr/bin/chromium")
)


def screenshot(html_path, output, *, width=1280, height=800):
    """Saves the top ``height`` pixels of ``html_path`` as ``output``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(Path(html_path).resolve().as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(output), full_page=False)
        finally:
            browser.close()


def _demo_report(folder):
    from explain_attn.report import render_html, report_from_sources

    report = report_from_sources(verbose=0)
    path = Path(folder) / "report.html"
    render_html(report, path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", help="an existing report.html")
    parser.add_argument("--output", default="docs/report_top.png")
    parser.add_argument("--height", type=int, default=800)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        html = arguments.report or _demo_report(folder)
        screenshot(html, arguments.output, height=arguments.height)
    print(arguments.output)


if __name__ == "__main__":
    main()
