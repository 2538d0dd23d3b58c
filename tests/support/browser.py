"""Debian's Chromium driven by Playwright: launching it, watching a page for errors, keeping screenshots.

Browser downloads do not work here, so Playwright always gets ``executable_path``. ``watch()`` records
every console error, uncaught page error and failed same-origin request of a page, so a test can assert
that a page is clean; ``screenshot()`` keeps an image under ``tests/artifacts/screenshots`` for people to look
at after the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Annotations only.
    from tests.support.stack import Stack

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


PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 860}

# The accessibility audit evaluated in each page (see the comment at the top of audit.js).
AUDIT = "\n".join(line for line in (Path(__file__).parent / "audit.js").read_text().splitlines()
                  if not line.startswith("//"))


AXE = Path(__file__).resolve().parents[2] / "app" / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def axe_violations(page: Any, source: str) -> list[str]:
    """axe-core's serious and critical violations of the page (evaluated through the DevTools protocol, which
    the page's Content-Security-Policy does not restrict, unlike an injected script tag)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(source)
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
    return [f"{item['impact']} {item['id']}: {[node['target'] for node in item['nodes']][:3]}"
            for item in result["violations"] if item["impact"] in ("serious", "critical")]


class Visit:
    """A browser context with its pages watched for errors."""

    def __init__(self, stack: Stack, chromium: Any, viewport: dict[str, int] = DESKTOP,
                 storage_state: dict[str, Any] | None = None) -> None:
        self.stack = stack
        self.context = chromium.new_context(ignore_https_errors=True, viewport=viewport, user_agent=DESKTOP_UA,
                                            storage_state=storage_state)
        self.page = self.context.new_page()
        self.problems: PageProblems = watch(self.page)

    def go(self, path: str) -> Any:
        return self.page.goto(self.stack.base_url + path)

    def sign_in(self, email: str, password: str) -> None:
        self.go("/login")
        self.page.fill("#email", email)
        self.page.fill("#password", password)
        with self.page.expect_navigation():
            self.page.click("main button[type=submit]")

    def audit(self) -> list[str]:
        return list(self.page.evaluate(AUDIT))

    def close(self) -> None:
        self.context.close()


def unexpected(problems: PageProblems, *statuses: int) -> list[str]:
    """The problems, less Chromium's log line for pages that answered one of ``statuses`` on purpose and
    requests the browser itself cancelled when it navigated on (``net::ERR_ABORTED``)."""
    expected = (*(f"the server responded with a status of {status} " for status in statuses), "net::ERR_ABORTED")
    return [line for line in problems.all() if not any(text in line for text in expected)]


def send_pageview(stack: Stack, domain: str) -> None:
    with stack.client() as client:
        answer = client.post("/api/event", headers={"User-Agent": DESKTOP_UA, "Content-Type": "text/plain"},
                             content=json.dumps({"name": "pageview", "url": f"https://{domain}/", "domain": domain}))
    assert 202 == answer.status_code, answer.text
