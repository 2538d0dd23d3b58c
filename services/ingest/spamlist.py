"""Refresh the vendored referrer-spam list from Matomo's repository (matomo-org/referrer-spam-list).

Usage: ``python -m services.ingest.spamlist [--url URL] [--output FILE]``. Downloads ``spammers.txt``, checks
that every line is a host name, and rewrites ``services/ingest/data/referrer-spam.txt`` (sorted, no
duplicates, no blank lines) and the date in ``services/ingest/data/README.md``. Exit status 0 on success, 1
with a message naming the URL, or the line, that was refused. The list is public domain; see the README.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import urllib.request
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
URL = "https://raw.githubusercontent.com/matomo-org/referrer-spam-list/master/spammers.txt"
HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$")
MIN_HOSTS = 100
"""A download shorter than this is a broken response, not a list."""


def parse(text: str, source: str) -> list[str]:
    """The hosts of a ``spammers.txt``; ValueError naming ``source`` and the line for anything else."""
    hosts: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        host = line.strip().lower()
        if not host:
            continue
        if not HOST.match(host):
            raise ValueError(f"{source}:{number}: not a host name: {line.strip()[:80]!r}")
        hosts.add(host)
    if len(hosts) < MIN_HOSTS:
        raise ValueError(f"{source}: only {len(hosts)} hosts, expected at least {MIN_HOSTS}")
    return sorted(hosts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=URL, help="where spammers.txt is read from")
    parser.add_argument("--output", type=Path, default=DATA / "referrer-spam.txt", help="the vendored list")
    args = parser.parse_args(argv)
    try:
        with urllib.request.urlopen(args.url, timeout=30) as response:  # noqa: S310 - an operator-given URL
            text = response.read().decode("utf-8")
        hosts = parse(text, args.url)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"refresh-referrer-spam: {exc}", file=sys.stderr)
        return 1
    args.output.write_text("\n".join(hosts) + "\n", encoding="utf-8")
    readme = args.output.parent / "README.md"
    if readme.exists():
        today = datetime.datetime.now(datetime.UTC).date().isoformat()
        readme.write_text(re.sub(r"(?m)^Retrieved: .*$", f"Retrieved: {today} from {args.url}",
                                 readme.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"{args.output}: {len(hosts)} hosts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
