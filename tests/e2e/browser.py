"""Debian's Chromium driven by Playwright: launching it, watching a page for errors, keeping screenshots.

Browser downloads do not work here, so Playwright always gets ``executable_path``. ``watch()`` records
every console error, uncaught page error and failed same-origin request of a page, so a test can assert
that a page is clean; ``screenshot()`` keeps an image under ``tests/artifacts/screenshots`` for people to look
at after the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


def launch(playwright: Any, *, automated: bool = True, host_rules: str = "") -> Any:
    """A headless Chromium; ``automated=False`` drops the automation switch, as a visitor's browser would."""
    args = list(CHROMIUM_ARGS)
    if host_rules:
        args.append(f"--host-resolver-rules={host_rules}")
    if automated:
        return playwright.chromium.launch(executable_path=CHROMIUM, args=args)
    return playwright.chromium.launch(executable_path=CHROMIUM, ignore_default_args=["--enable-automation"],
                                      args=[*args, "--disable-blink-features=AutomationControlled"])


@dataclass
class PageProblems:
    """What went wrong in a page while it was watched: console errors, page errors, failed requests."""

    console: list[str] = field(default_factory=list)
    page: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return [*self.console, *self.page, *self.requests]


def watch(page: Any) -> PageProblems:
    problems = PageProblems()
    page.on("console", lambda message: problems.console.append(f"{page.url}: {message.text}")
            if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.page.append(f"{page.url}: {error}"))
    page.on("requestfailed", lambda request: problems.requests.append(
        f"{request.method} {request.url}: {request.failure}"))
    return problems


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
