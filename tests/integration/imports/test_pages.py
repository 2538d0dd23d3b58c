"""The imports page over HTTP (api → integrations service → worker): who may use it, an upload streamed
through, its refusals, its progress and its deletion; the Export button's streamed download and export jobs."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import html
import io
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import markupsafe
import pytest
import redis

from app.core.settings import load_settings
from app.devstack import stop_processes, wait_for_port
from app.domain.accounts.session import new_session
from services.integrations import exports
from tests.support.import_files import pages_csv, plausible_export
from tests.support.imports import Imports, Site

BEACON = str(Path(sys.prefix) / "bin" / "beacon")
MAX_UPLOAD = 3 * 1024 * 1024
LARGE = 5
"""Events from which a site's export is built by an export job (``BEACON_IMPORT_EXPORT_JOB_EVENTS``)."""


@pytest.fixture(scope="module")
def api(imports: Imports) -> Iterator[str]:
    """api, integrations, analytics, a worker and the scheduler on the imports database; uploads up to 3 MiB,
    export jobs from 5 events."""
    environment = {**imports.environment, "BEACON_IMPORT_MAX_UPLOAD": str(MAX_UPLOAD),
                   "BEACON_IMPORT_EXPORT_JOB_EVENTS": str(LARGE)}
    settings = load_settings(environment)
    log = Path(os.environ.get("BEACON_TEST_LOG_DIR") or imports.state) / "imports-pages.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = []
    with log.open("ab") as out:
        for args in (("serve", "api"), ("serve", "integrations"), ("serve", "analytics"), ("worker",),
                     ("scheduler",)):
            started.append(subprocess.Popen([BEACON, *args], env={**os.environ, **environment}, stdout=out,
                                            stderr=out))
    try:
        for name in ("api", "integrations", "analytics"):
            wait_for_port(settings.server.ports[name], 120)
        yield f"http://127.0.0.1:{settings.server.ports['api']}"
    finally:
        stop_processes(started, 20)


def member(imports: Imports, site: Site, role: str) -> int:
    user = imports.sql("INSERT INTO users (email, password_hash) VALUES (:e, 'x') RETURNING id",
                       e=f"{role}-{secrets.token_hex(3)}@imports.example")[0][0]
    if role != "stranger":
        imports.sql("INSERT INTO memberships (site_id, user_id, role) VALUES (:s, :u, :r)", s=site.id, u=user, r=role)
    return int(user)


def browser(imports: Imports, api: str, user_id: int | None) -> httpx.Client:
    client = httpx.Client(base_url=api, timeout=30, headers={"Accept": "text/html"})
    if user_id is not None:
        session_id = secrets.token_hex(32)
        with redis.Redis.from_url(imports.settings.redis.url) as store:
            store.set(f"{imports.settings.redis.key_prefix}sessions:{session_id}",
                      json.dumps(new_session(user_id, 0)), ex=600)
        client.cookies.set("beacon_session", session_id)
    return client


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


def upload(client: httpx.Client, domain: str, token: str, body: bytes, name: str = "export.zip",
           source: str = "plausible") -> httpx.Response:
    return client.put(f"/sites/{domain}/imports/upload", params={"source": source, "name": name}, content=body,
                      headers={"X-CSRFToken": token, "Content-Type": "application/octet-stream"})


def wait_for_status(imports: Imports, import_id: int, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = imports.sql("SELECT status, rows_done, days_done FROM site_imports WHERE id = :id", id=import_id)
        if row and row[0][0] in ("completed", "failed"):
            return row[0]
        time.sleep(0.2)
    raise AssertionError("the import did not end")


@pytest.mark.parametrize(("role", "page", "put"), [
    pytest.param("owner", 200, 201, id="owner"),
    pytest.param("admin", 200, 201, id="admin"),
    pytest.param("viewer", 403, 403, id="viewer"),
    pytest.param("stranger", 404, 404, id="not-a-member"),
])
def test_who_may_import(imports: Imports, site: Site, api: str, tmp_path: Path, role: str, page: int,
                        put: int) -> None:
    """Owners and admins may import; a viewer is forbidden and a non-member finds no site; nothing is created."""
    user = site.owner if role == "owner" else member(imports, site, role)
    body = plausible_export(days=3).zip(tmp_path / "e.zip").read_bytes()
    with browser(imports, api, user) as client:
        shown = client.get(f"/sites/{site.domain}/imports")
        assert page == shown.status_code, shown.text[-2500:]
        token = csrf(client.get("/account"))
        answer = upload(client, site.domain, token, body)

    assert put == answer.status_code, answer.text[:300]
    assert (1 if put == 201 else 0) == imports.sql("SELECT count(*) FROM site_imports")[0][0]


def test_anonymous_visitors_are_sent_to_sign_in(imports: Imports, site: Site, api: str) -> None:
    """Without a session the page redirects to the sign-in page and an upload is refused."""
    with browser(imports, api, None) as client:
        assert client.get(f"/sites/{site.domain}/imports").status_code in (302, 303, 401)
        assert upload(client, site.domain, "x", b"PK").status_code in (401, 403)


def test_upload_runs_shows_progress_and_deletes(imports: Imports, site: Site, api: str, tmp_path: Path) -> None:
    """An upload is imported by the worker, listed with its rows and days, and its deletion removes its rows."""
    export = plausible_export(days=30)
    with browser(imports, api, site.owner) as client:
        page = client.get(f"/sites/{site.domain}/imports")
        assert "Nothing imported yet." in page.text
        answer = upload(client, site.domain, csrf(page), export.zip(tmp_path / "e.zip").read_bytes(), "e.zip")
        assert 201 == answer.status_code, answer.text
        created = answer.json()
        assert ("plausible", "e.zip") == (created["source"], created["upload_name"])

        assert ("completed", sum(export.rows.values()), 30) == tuple(wait_for_status(imports, created["id"]))
        listed = client.get(f"/sites/{site.domain}/imports/list").json()
        assert [(created["id"], "completed", 100.0, export.first.isoformat())] == [
            (i["id"], i["status"], i["percent"], i["start_date"]) for i in listed]
        page = client.get(f"/sites/{site.domain}/imports")
        assert f"{export.first} to {export.last}" in page.text

        deleted = client.post(f"/sites/{site.domain}/imports/{created['id']}/delete",
                              data={"_csrf_token": csrf(page)})
        assert 303 == deleted.status_code
    assert [(0, 0)] == imports.sql("SELECT (SELECT count(*) FROM site_imports), "
                                   "(SELECT count(*) FROM imported_visitors)")


@pytest.mark.parametrize(("body", "status", "detail"), [
    pytest.param(b"date,visitors\n2024-01-01,1\n", 422,
                 "imported_visitors_20240101_20240102.csv, line 1, column pageviews: missing columns", id="header"),
    pytest.param(b"x" * (MAX_UPLOAD + 1), 413, "larger than the maximum", id="too-large"),
])
def test_upload_refusals(imports: Imports, site: Site, api: str, body: bytes, status: int, detail: str) -> None:
    """A bad file is answered with its reason (file, line, column) and creates nothing."""
    uploads = imports.settings.paths.state_dir / "imports"
    before = set(uploads.glob("upload-*"))
    with browser(imports, api, site.owner) as client:
        token = csrf(client.get(f"/sites/{site.domain}/imports"))
        answer = upload(client, site.domain, token, body, "imported_visitors_20240101_20240102.csv")

    assert status == answer.status_code, answer.text[:300]
    assert detail in answer.json()["detail"]
    assert 0 == imports.sql("SELECT count(*) FROM site_imports")[0][0]
    assert before == set(uploads.glob("upload-*"))  # the refused upload was removed


def test_upload_without_the_csrf_token_is_refused(imports: Imports, site: Site, api: str) -> None:
    """A cross-site PUT without the token gets 403."""
    with browser(imports, api, site.owner) as client:
        answer = upload(client, site.domain, "forged", b"date\n")
    assert 403 == answer.status_code


def test_a_large_csv_streams_through(imports: Imports, site: Site, api: str) -> None:
    """A 1 MiB-plus CSV (past the services' 64 KiB JSON limit) reaches the service whole and is imported."""
    body, pageviews = pages_csv(30_000, dt.datetime.now(dt.UTC).date() - dt.timedelta(days=40))
    assert len(body) > 1024 * 1024
    with browser(imports, api, site.owner) as client:
        token = csrf(client.get(f"/sites/{site.domain}/imports"))
        answer = upload(client, site.domain, token, body.encode(), "imported_pages_20240101_20240201.csv")
    assert 201 == answer.status_code, answer.text

    assert "completed" == wait_for_status(imports, answer.json()["id"], 120)[0]
    assert [(30_000, pageviews)] == imports.sql("SELECT count(*), sum(pageviews) FROM imported_pages")


def track(imports: Imports, site: Site, events: int) -> None:
    """``events`` pageviews of distinct visitors, yesterday at noon (UTC)."""
    moment = dt.datetime.combine(dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1), dt.time(12), tzinfo=dt.UTC)
    for n in range(events):
        imports.sql(
            "INSERT INTO events (site_id, timestamp, name, visitor_id, session_id, hostname, pathname, referrer, "
            "referrer_source, device, browser, country, interactive, props) VALUES (:site, :ts, 'pageview', :n, "
            ":n, 'imports.example', '/', '', '', 'Desktop', 'Chrome', 'DE', true, '{}')",
            site=site.id, ts=moment + dt.timedelta(minutes=n), n=n + 1)


def wait_for_export(imports: Imports, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = imports.sql("SELECT id, status, bytes_done, file_path, error FROM site_exports ORDER BY id DESC LIMIT 1")
        if row and row[0][1] in ("ready", "failed"):
            return row[0]
        time.sleep(0.3)
    raise AssertionError("the export did not end")


def test_a_large_site_export_is_built_linked_emailed_and_purged(imports: Imports, site: Site, api: str) -> None:
    """A site with BEACON_IMPORT_EXPORT_JOB_EVENTS events: Export creates a job, which writes the zip; the page
    links it, the outbox emails the same link, only an owner or admin with the unexpired signature downloads it,
    and once expired the file is purged and the link answers 404."""
    track(imports, site, LARGE + 2)
    owner_email = imports.sql("SELECT email FROM users WHERE id = :id", id=site.owner)[0][0]
    with browser(imports, api, site.owner) as client:
        page = client.get(f"/sites/{site.domain}/imports")
        assert "No export jobs." in page.text
        asked = client.post(f"/sites/{site.domain}/imports/export",
                            data={"_csrf_token": csrf(page), "date_range": "all"})
        assert (303, f"/sites/{site.domain}/imports#exports") == (asked.status_code, asked.headers["location"])

        export_id, status, size, path, error = wait_for_export(imports)
        assert ("ready", None) == (status, error)
        assert size == Path(path).stat().st_size > 0
        listed = client.get(f"/sites/{site.domain}/imports/exports").json()
        assert [(export_id, "ready")] == [(e["id"], e["status"]) for e in listed]
        link = listed[0]["download"]
        assert link.startswith(f"/sites/{site.domain}/exports/{export_id}/download?token=")
        assert html.escape(link) in client.get(f"/sites/{site.domain}/imports").text

        answer = client.get(link)
        assert 200 == answer.status_code, answer.text[:300]
        assert "application/zip" == answer.headers["content-type"]
        with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
            names = archive.namelist()
            visitors_file = next(n for n in names if n.startswith("imported_visitors_"))
            rows = list(csv.DictReader(io.StringIO(archive.read(visitors_file).decode())))
        assert 10 == len(names)
        assert LARGE + 2 == sum(int(r["visitors"]) for r in rows)

        tampered = client.get(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"))
        assert 404 == tampered.status_code

    body = imports.sql("SELECT text_body FROM emails WHERE kind = 'export_ready' AND recipient = :r "
                       "ORDER BY id DESC LIMIT 1", r=owner_email)[0][0]
    emailed = re.search(r"https?://\S+/sites/\S+/download\?token=\S+", body)
    assert emailed is not None, body
    emailed_path = emailed.group(0).split("/sites/", 1)[1]
    with browser(imports, api, site.owner) as client:
        assert 200 == client.get(f"/sites/{emailed_path}").status_code
    with browser(imports, api, member(imports, site, "viewer")) as client:
        assert 403 == client.get(link).status_code
    with browser(imports, api, member(imports, site, "admin")) as client:
        assert 200 == client.get(link).status_code

    imports.sql("UPDATE site_exports SET expires_at = now() - interval '1 second' WHERE id = :id", id=export_id)
    assert [export_id] == exports.purge_expired(imports.engine)
    assert not Path(path).exists()
    assert [("expired", None)] == imports.sql("SELECT status, file_path FROM site_exports WHERE id = :id",
                                              id=export_id)
    with browser(imports, api, site.owner) as client:
        assert 404 == client.get(link).status_code


def test_a_small_site_export_streams_and_a_bad_range_is_refused(imports: Imports, site: Site, api: str) -> None:
    """Under the threshold the Export button redirects to the streamed download; a malformed range is said in
    words and creates no job."""
    track(imports, site, LARGE - 1)
    with browser(imports, api, site.owner) as client:
        token = csrf(client.get(f"/sites/{site.domain}/imports"))
        asked = client.post(f"/sites/{site.domain}/imports/export", data={"_csrf_token": token, "date_range": "7d"})
        assert (303, f"/sites/{site.domain}/export?date_range=7d") == (asked.status_code, asked.headers["location"])
        streamed = client.get(asked.headers["location"])
        assert (200, "application/zip") == (streamed.status_code, streamed.headers["content-type"])

        track(imports, site, 2)
        refused = client.post(f"/sites/{site.domain}/imports/export",
                              data={"_csrf_token": token, "date_range": "yesterday-ish"}, follow_redirects=True)
        assert "Date_range must be YYYY-MM-DD,YYYY-MM-DD or one of all" in refused.text
    assert 0 == imports.sql("SELECT count(*) FROM site_exports")[0][0]


def test_export_jobs_fail_in_words_and_a_dead_job_is_rebuilt(imports: Imports, site: Site, api: str) -> None:
    """A range the analytics service refuses fails the export with its reason, shown on the page; an export
    left ``building`` by a killed worker (its lease expired, a partial file behind) is built again from the
    start by the next job."""
    track(imports, site, LARGE)
    with browser(imports, api, site.owner) as client:
        token = csrf(client.get(f"/sites/{site.domain}/imports"))
        client.post(f"/sites/{site.domain}/imports/export",
                    data={"_csrf_token": token, "date_range": "2026-02-30,2026-03-01"})
        export_id, status, _, path, error = wait_for_export(imports)
        assert ("failed", None) == (status, path)
        assert "Invalid date_range '[\"2026-02-30\", \"2026-03-01\"]'." == error  # Plausible's words
        assert str(markupsafe.escape(error)) in client.get(f"/sites/{site.domain}/imports").text  # as Jinja escapes

    dead = imports.sql("INSERT INTO site_exports (site_id, date_range, requested_by, status, lease_token, "
                       "leased_until, attempts, bytes_done) VALUES (:s, 'all', :u, 'building', 'killed', "
                       "now() - interval '1 second', 1, 4096) RETURNING id", s=site.id, u=site.owner)[0][0]
    leftover = imports.settings.paths.state_dir / "exports" / f"export-{dead}-killed.partial"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"PK\x03\x04 half a zip")
    export_id, status, size, path, error = wait_for_export(imports)
    assert (dead, "ready", None) == (export_id, status, error)
    assert size == Path(path).stat().st_size
    assert [(2,)] == imports.sql("SELECT attempts FROM site_exports WHERE id = :id", id=dead)
    assert not leftover.exists()


def test_an_upload_cut_off_midway_is_a_client_error_and_leaves_nothing(imports: Imports, site: Site,
                                                                       api: str) -> None:
    """A client that goes away mid-upload gets no import, leaves no file, and logs no 500 in either process."""
    with browser(imports, api, site.owner) as client:
        token = csrf(client.get(f"/sites/{site.domain}/imports"))
        cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in client.cookies.jar)
    uploads = imports.settings.paths.state_dir / "imports"
    before = set(uploads.glob("upload-*"))  # files of earlier tests' imports, which their fixture truncated
    request_id = f"cut-off-upload-{secrets.token_hex(8)}"
    port = int(api.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall((
            f"PUT /sites/{site.domain}/imports/upload?source=plausible&name=export.zip HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nCookie: {cookies}\r\nX-CSRFToken: {token}\r\nX-Request-ID: {request_id}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 2000000\r\n\r\n").encode())
        connection.sendall(b"PK\x03\x04" + b"x" * 500_000)
        time.sleep(1)  # both processes are reading the body now

    log = Path(os.environ.get("BEACON_TEST_LOG_DIR") or imports.state) / "imports-pages.log"

    def lines() -> list[dict[str, Any]]:
        found = []
        for line in log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("request_id") == request_id:
                    found.append(record)
        return found

    deadline = time.monotonic() + 30
    while {"api", "integrations"} - {line.get("proc") for line in lines()} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [] == [line["msg"] for line in lines() if line["level"] == "error"]
    assert {"api", "integrations"} == {line.get("proc") for line in lines()}
    assert [] == imports.sql("SELECT id FROM site_imports")
    assert set() == set(uploads.glob("upload-*")) - before
