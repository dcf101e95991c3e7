"""The studio for real: ``ryla serve`` (uvicorn) on PostgreSQL and Redis with real workers and
beat; the API driven over HTTP with a token, the pages in Debian's Chromium through Playwright.

Screenshots of every page land in RYLA_TEST_SCREENSHOTS (default: the test's tmp folder).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from admin.access import create_token, create_user
from models import Influencer, Post, PostStatus, Role, TokenScope, utcnow
from pipeline.db import session_scope
from tests.conftest import add_influencer, add_post
from tests.integration.conftest import Backend, Processes, free_port, missing
from tests.integration.test_chain import wait_for

pytestmark = pytest.mark.integration
S = PostStatus
PASSWORD = "correct-horse-battery"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def studio(backend: Backend, processes: Processes) -> Iterator[tuple[str, str]]:
    """The running studio's base URL and an editor's write token; workers and beat behind it."""
    with session_scope(backend.factory) as s:
        add_influencer(s, approval_required=True)
        create_user(session=s, username="eve", password=PASSWORD, role=Role.ADMIN)
        token = create_token(
            session=s, username="eve", name="n8n", scope=TokenScope.WRITE, now=utcnow()
        )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    backend.env["RYLA_PUBLIC_BASE_URL"] = base
    processes.start("serve", "--port", str(port), ready="serving media")
    processes.worker("gpu", concurrency=1)
    processes.worker("cpu,io")
    yield base, token


@pytest.mark.parametrize("backend", ["postgres_redis"], indirect=True)
def test_an_integration_runs_a_post_through_the_api_with_a_token(
    backend: Backend, processes: Processes, studio: tuple[str, str]
) -> None:
    base, token = studio
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        made = api.post("/api/v1/posts", json={"handle": "mia", "at": "+2h", "caption": "Via API"})
        assert made.status_code == 201, made.text
        post_id = made.json()["id"]
        queued = api.post(f"/api/v1/posts/{post_id}/generate")
        assert queued.status_code == 202 and queued.json()["status"] == "generating"
        wait_for(backend, processes, [post_id], {S.AWAITING_APPROVAL})
        key = {"Idempotency-Key": str(uuid.uuid4())}
        with ThreadPoolExecutor(8) as pool:  # a retrying client's twins, all at once
            approved = list(
                pool.map(
                    lambda _: api.post(f"/api/v1/posts/{post_id}/approve", headers=key), range(8)
                )
            )
        assert [a.status_code for a in approved] == [202] * 8, [a.text for a in approved]
        assert all(a.json() == approved[0].json() for a in approved)
        assert approved[0].json()["status"] == "approved"  # due in 2 h: it waits for its time
        api.post(f"/api/v1/posts/{post_id}/publish")
        wait_for(backend, processes, [post_id], {S.PUBLISHED})
        detail = api.get(f"/api/v1/posts/{post_id}").json()
        assert detail["status"] == "published" and detail["generator"] == "preview"
        assert [a["status"] for a in detail["attempts"]] == ["succeeded"]
        image = httpx.get(detail["images"][0]["url"], timeout=10)  # signed: no token needed
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
        repeat = httpx.get(
            detail["images"][0]["url"], headers={"If-None-Match": image.headers["etag"]}
        )
        assert repeat.status_code == 304
        listed = api.get("/api/v1/posts", params={"state": "published", "handle": "mia"}).json()
        assert [p["id"] for p in listed["items"]] == [post_id]
        assert httpx.get(f"{base}/api/v1/posts", timeout=10).status_code == 401


def _browser() -> object:
    if not Path(CHROMIUM).is_file():
        missing(f"{CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)")
    from playwright.sync_api import sync_playwright

    return sync_playwright()


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("RYLA_TEST_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("backend", ["postgres_redis"], indirect=True)
def test_a_person_runs_posts_from_the_browser_alone(
    backend: Backend, processes: Processes, studio: tuple[str, str], tmp_path: Path
) -> None:
    base, _ = studio
    with session_scope(backend.factory) as s:
        ids = [
            add_post(s, at=utcnow() + timedelta(seconds=i), caption_text=f"#{i}") for i in range(3)
        ]
    processes.start("beat")
    wait_for(backend, processes, ids, {S.AWAITING_APPROVAL})
    shots = _shots(tmp_path)
    with _browser() as p:  # type: ignore[attr-defined]
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            _run_in_browser(page, base, ids, shots, backend, processes)
        finally:
            browser.close()
    assert {p.name for p in shots.iterdir()} >= {
        "login.png", "calendar.png", "queue.png", "post-published.png", "feed.png",
        "plan-error.png", "status.png", "targets.png",
    }  # fmt: skip


def _run_in_browser(
    page: object, base: str, ids: list[int], shots: Path, backend: Backend, procs: Processes
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    first, second, third = ids
    page.goto(f"{base}/queue")
    expect(page).to_have_url(f"{base}/login?next=/queue")
    page.screenshot(path=shots / "login.png")
    page.fill("input[name=username]", "eve")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(f"#post-{first}")).to_be_visible()
    page.goto(f"{base}/calendar?handle=mia&view=week")
    expect(page.locator(f'.cal a[data-post="{first}"]')).to_be_visible()
    page.screenshot(path=shots / "calendar.png", full_page=True)

    page.goto(f"{base}/queue")
    expect(page.locator(f"#post-{first} img").first).to_be_visible()
    page.screenshot(path=shots / "queue.png", full_page=True)
    page.locator(f"#post-{first}").focus()
    page.keyboard.press("a")  # one keystroke approves
    expect(page.locator(".notice")).to_contain_text(f"post {first}: approve done")
    page.goto(f"{base}/posts/{first}")
    # The page updates itself (no reload) until the post is out.
    expect(page.locator("#live .state .badge")).to_have_text("published", timeout=90_000)
    page.screenshot(path=shots / "post-published.png", full_page=True)

    page.goto(f"{base}/queue")
    page.locator(f"#post-{second} button[data-key=g]").click()  # regenerate
    expect(page.locator(".notice")).to_contain_text(f"post {second}: generate done")
    page.fill(f"#post-{third} input[name=note]", "not on brand")
    page.locator(f"#post-{third} .act-reject button").click()
    expect(page.locator(".notice")).to_contain_text(f"post {third}: reject done, now cancelled")
    wait_for(backend, procs, [second], {S.AWAITING_APPROVAL})
    with backend.factory() as s:
        assert s.scalar(select(Post.generation).where(Post.id == second)) == 2

    page.goto(f"{base}/feed?handle=mia")
    expect(page.locator(f'.tile[data-post="{first}"] img')).to_be_visible()
    page.screenshot(path=shots / "feed.png", full_page=True)

    page.goto(f"{base}/plan")
    page.fill("#influencer input[name=handle]", "zoe")
    page.fill("#influencer input[name=display_name]", "Zoe")
    page.fill("#influencer input[name=timezone]", "Mars/Base")
    page.click("#influencer button[type=submit]")
    error = page.locator("#influencer-timezone-error")
    expect(error).to_contain_text("Mars/Base")
    page.screenshot(path=shots / "plan-error.png", full_page=True)
    page.fill("#influencer input[name=timezone]", "Europe/Paris")
    page.click("#influencer button[type=submit]")
    expect(page.locator(".notice")).to_contain_text("influencer zoe added")
    with backend.factory() as s:
        assert s.scalars(select(Influencer.timezone).where(Influencer.handle == "zoe")).one() == (
            "Europe/Paris"
        )
    for name in ("status", "targets"):
        page.goto(f"{base}/{name}")
        page.screenshot(path=shots / f"{name}.png", full_page=True)
