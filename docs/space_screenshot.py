"""The screenshot of the web demo in README.md and spaces/aha-explain/README.md, taken by the browser the tests
use (Debian's chromium under Playwright; tests/browser_helpers.py).

    python docs/space_screenshot.py --demo_dir aha-demo            # the explainer `aha demo` trained there
    python docs/space_screenshot.py --demo_dir aha-demo --example 3 --output spaces/aha-explain/screenshot.png

It starts ``spaces/aha-explain/app.py`` on 127.0.0.1 with the given demo folder, picks an example and saves the
whole page once every method's map is shown.
"""

import argparse
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser_helpers import launch_chromium, serving  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--demo_dir", default="aha-demo", help="aha demo's output folder (its explainer and examples)."
    )
    parser.add_argument("--example", type=int, default=1, help="Which example to explain (1-based, default 1).")
    parser.add_argument("--output", default=str(ROOT / "spaces" / "aha-explain" / "screenshot.png"))
    args = parser.parse_args()
    with serving("--demo_dir", args.demo_dir, timeout=3600) as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        page.locator("#examples .thumbnail-item").nth(args.example - 1).click()
        page.locator("#status").filter(has_text=f"Example {args.example}: predicted").wait_for(timeout=120_000)
        page.locator("#overlay-0 img").wait_for()
        page.mouse.move(0, 0)
        page.screenshot(path=args.output, full_page=True)
        browser.close()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
