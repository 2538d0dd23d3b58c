"""User-Agent parsers compared (on demand): Beacon's ua-parser with its Plausible naming, and Device Detector.

Plausible parses with UAInspector (Matomo Device Detector's rules); PyPI's ``device-detector`` is a Python
port of the same rules. This prints, for a fixed set of common User-Agents, the names each gives as
Plausible would report them (Device Detector's through Plausible's own folding of mobile variants), the
rows where they differ, and the CPU time per parse of each, uncached (every User-Agent new) — Beacon caches
parses, so that is the cost of a visitor with a User-Agent the process has not seen yet.

``device-detector`` is not a Beacon dependency: install it apart and name it on ``PYTHONPATH``, e.g.
``pip install --target /tmp/dd device-detector==6.5.1`` then
``PYTHONPATH=/tmp/dd python -m tests.benchmarks.bench_user_agents``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from services.ingest import enrich

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))

USER_AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
    "Safari/537.36 Edg/126.0.2592.87",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 "
    "Chrome/121.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/127.0 "
    "Mobile/15E148 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
    "Safari/537.36 OPR/111.0.0.0",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile "
    "Safari/537.36 YaBrowser/24.4.1.99.00 SA/3",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.34.109]",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 "
    "Chrome/126.0.6478.71 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 "
    "Mobile Safari/537.36 EdgA/126.0",
    "Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
    "Safari/537.36 Vivaldi/6.7",
    "Mozilla/5.0 (X11; Fedora; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/5.0 "
    "Chrome/85.0.4183.93 TV Safari/537.36",
]

# Plausible's folding of Device Detector's client names and device types (its Ingestion.Event).
FOLDED = {"Mobile Safari": "Safari", "Chrome Mobile": "Chrome", "Chrome Mobile iOS": "Chrome",
          "Firefox Mobile": "Firefox", "Firefox Mobile iOS": "Firefox", "Opera Mobile": "Opera", "Opera Mini": "Opera",
          "Opera Mini iOS": "Opera", "Yandex Browser Lite": "Yandex Browser", "Chrome Webview": "Mobile App"}
SCREENS = {"smartphone": "Mobile", "feature phone": "Mobile", "portable media player": "Mobile", "phablet": "Mobile",
           "wearable": "Mobile", "camera": "Mobile", "car browser": "Tablet", "tablet": "Tablet", "tv": "Desktop",
           "console": "Desktop", "desktop": "Desktop"}


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2]) if version else ""


def plausible_names(parsed: Any) -> tuple[str, str, str, str, str]:
    """Device Detector's answer as Plausible stores it: browser, browser version, OS, OS version, device."""
    client_type = str(getattr(parsed.client_type(), "value", parsed.client_type()))
    app = client_type == "mobile app"
    browser = "Mobile App" if app else FOLDED.get(parsed.client_name(), parsed.client_name())
    device = SCREENS.get(str(getattr(parsed.device_type(), "value", parsed.device_type())), "")
    return (browser or "", "" if app else _major_minor(parsed.client_version() or ""), parsed.os_name() or "",
            _major_minor(parsed.os_version() or ""), device)


def beacon_names(user_agent: str) -> tuple[str, str, str, str, str]:
    agent = enrich.client(user_agent)
    return agent.browser, agent.browser_version, agent.os, agent.os_version, agent.device


def cpu_per_parse(parse: Any, rounds: int) -> float:
    """CPU seconds per call; each User-Agent gets a unique suffix so that no cache (ours, the parsers') helps."""
    start = time.process_time()
    for round_ in range(rounds):
        for user_agent in USER_AGENTS:
            parse(f"{user_agent} r{round_}")
    return (time.process_time() - start) / (rounds * len(USER_AGENTS))


def test_user_agent_parsers() -> None:
    """Prints names side by side and CPU per uncached parse; asserts nothing about speed."""
    try:
        from device_detector import DeviceDetector  # noqa: PLC0415 - optional, installed by hand (see above)
    except ImportError:
        print("\ndevice-detector is not importable: see this module's docstring")
        return
    differences = []
    for user_agent in USER_AGENTS:
        ours, theirs = beacon_names(user_agent), plausible_names(DeviceDetector(user_agent).parse())
        if ours != theirs:
            differences.append((user_agent[:70], ours, theirs))
    print(f"\n{len(USER_AGENTS) - len(differences)} of {len(USER_AGENTS)} User-Agents named alike "
          "(browser, version, OS, version, device); differences (Beacon | Device Detector as Plausible):")
    for user_agent, ours, theirs in differences:
        print(f"  {user_agent}\n    {ours}\n    {theirs}")

    def device_detector(user_agent: str) -> object:
        return DeviceDetector(user_agent).parse()

    device_detector(USER_AGENTS[0])  # load its rules once, as a process would at start
    ours = cpu_per_parse(enrich.client, ROUNDS)
    theirs = cpu_per_parse(device_detector, ROUNDS)
    print(f"CPU per uncached parse ({ROUNDS} rounds of {len(USER_AGENTS)}): Beacon (ua-parser, naming, bot check) "
          f"{ours * 1e6:.0f} µs, device-detector {theirs * 1e6:.0f} µs ({theirs / ours:.0f}x)")


if __name__ == "__main__":
    test_user_agent_parsers()
