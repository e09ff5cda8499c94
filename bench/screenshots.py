"""Screenshots of the main pages, public and admin, at desktop and phone widths.

Usage: bin/screenshots (starts a demonstration portal and runs this), or
       .venv/bin/python bench/screenshots.py BASE_URL STATUS_URL OUTPUT_DIR
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]
SIZES = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}


def shoot(base: str, status_url: str, out: Path, email_url: str = ""):
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for size, viewport in SIZES.items():
            context = browser.new_context(viewport=viewport, device_scale_factor=1)
            page = context.new_page()
            for name, path in [("home", "/"), ("policy", "/policy/"), ("report-form", "/report/"),
                               ("hall-of-fame", "/hall-of-fame/")]:
                page.goto(base + path)
                page.screenshot(path=out / f"{name}-{size}.png", full_page=name != "policy")
            page.goto(base + "/report/")
            page.get_by_role("button", name="Submit report").click()
            page.wait_for_load_state()
            page.screenshot(path=out / f"report-form-errors-{size}.png")
            page.get_by_label("Title").fill("Open redirect on /login")
            page.get_by_label("Description").fill("The `next` parameter is not checked.")
            page.get_by_role("button", name="Submit report").click()
            page.wait_for_url("**/report/received/")
            page.screenshot(path=out / f"report-received-{size}.png", full_page=True)
            page.goto(status_url)
            page.screenshot(path=out / f"status-{size}.png", full_page=True)
            page.goto(status_url.rstrip("/") + "/submitted/")
            page.screenshot(path=out / f"status-submitted-{size}.png", full_page=True)
            if email_url:  # a report that arrived by email to the security address
                page.goto(email_url)
                page.screenshot(path=out / f"status-emailed-{size}.png", full_page=True)
            page.goto(base + "/admin/login/")
            page.get_by_label("Username").fill("demo")
            page.get_by_label("Password").fill("demo-password-1")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_load_state()
            page.goto(base + "/admin/disclosure/report/")
            page.screenshot(path=out / f"admin-queue-{size}.png")
            page.locator("table#result_list tbody th a").first.click()
            page.wait_for_load_state()
            page.screenshot(path=out / f"admin-report-{size}.png", full_page=True)
            page.goto(base + "/admin/metrics/")
            page.screenshot(path=out / f"admin-metrics-{size}.png")
            context.close()
        browser.close()
    for path in sorted(out.glob("*.png")):
        print(path)


if __name__ == "__main__":
    shoot(sys.argv[1].rstrip("/"), sys.argv[2], Path(sys.argv[3]), *sys.argv[4:5])
