"""The pages read the same pipeline functions as the API: a bad form value is shown beside its
field with what was typed kept, queue actions go through the triggers, a post's page polls
while the post moves, and the calendar and feed show thumbnails at signed links."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from models import Influencer, Post, PostStatus, PublishTarget, TargetKind
from pipeline.db import session_scope
from pipeline.publishers.targets import TargetIn, create_target
from pipeline.settings import Settings
from pipeline.steps.claims import Dispatch
from tests.conftest import NOW
from tests.studio_kit import csrf_of, sign_in
from tests.unit.studio.test_studio_api import awaiting


def test_a_bad_form_value_is_shown_beside_its_field_and_nothing_is_written(
    editor_page: TestClient, factory: sessionmaker[Session]
) -> None:
    csrf = csrf_of(editor_page)
    form = {"csrf_token": csrf, "handle": "zoe", "display_name": "Zoe", "timezone": "Mars/Base"}
    answer = editor_page.post("/plan/influencers", data=form)
    assert answer.status_code == 422
    error = re.search(r'id="influencer-timezone-error"[^>]*>([^<]+)<', answer.text)
    assert error and "Mars/Base" in error.group(1)
    assert 'value="zoe"' in answer.text  # what was typed is kept
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Influencer)) == 1
    fixed = editor_page.post("/plan/influencers", data={**form, "timezone": "Europe/Paris"})
    assert fixed.status_code == 200 and "influencer zoe added" in fixed.text


def test_queue_actions_approve_and_reject_through_the_triggers(
    editor_page: TestClient,
    factory: sessionmaker[Session],
    settings: Settings,
    sent: list[Dispatch],
) -> None:
    first = awaiting(factory, settings)
    second = awaiting(factory, settings, at=NOW + timedelta(hours=1))
    queue = editor_page.get("/queue")
    assert f'id="post-{first}"' in queue.text and 'data-key="a"' in queue.text
    csrf = csrf_of(editor_page)
    done = editor_page.post(
        f"/posts/{first}/do/approve", data={"csrf_token": csrf, "next": "/queue"}
    )
    assert "approve done, now publishing" in done.text
    note = {"csrf_token": csrf, "next": "/queue", "note": "wrong light"}
    editor_page.post(f"/posts/{second}/do/reject", data=note)
    with factory() as s:
        assert s.get_one(Post, first).status is PostStatus.PUBLISHING
        assert s.get_one(Post, second).status is PostStatus.CANCELLED
    assert [d.post_id for d in sent] == [first]


def test_a_post_page_polls_while_the_post_moves_and_stops_when_it_settles(
    editor_page: TestClient, factory: sessionmaker[Session], settings: Settings
) -> None:
    post_id = awaiting(factory, settings)
    settled = editor_page.get(f"/posts/{post_id}")
    assert "hx-trigger" not in settled.text and "/media/posts/" in settled.text
    csrf = csrf_of(editor_page)
    editor_page.post(f"/posts/{post_id}/do/generate", data={"csrf_token": csrf})
    moving = editor_page.get(f"/posts/{post_id}/live")
    assert f'hx-get="/posts/{post_id}/live"' in moving.text and "generating" in moving.text


def test_calendar_and_feed_show_thumbnails_at_signed_links(
    editor_page: TestClient, factory: sessionmaker[Session], settings: Settings
) -> None:
    post_id = awaiting(factory, settings)
    for path in (
        "/calendar?handle=mia&day=2026-11-26",
        "/calendar?view=week&day=2026-11-26",
        "/feed?handle=mia",
    ):
        text = editor_page.get(path).text
        assert f'data-post="{post_id}"' in text, path
        thumb = re.search(r'src="(/media/posts/[^"]+thumbnail[^"]+)"', text)
        assert thumb, path
        assert editor_page.get(thumb.group(1).replace("&amp;", "&")).status_code == 200


def test_an_admin_reauthorises_a_target_and_a_bad_url_is_shown_beside_its_field(
    app_client: TestClient, factory: sessionmaker[Session], settings: Settings
) -> None:
    secrets = {"url": "https://hooks.example.test/abc", "signing_key": "k" * 32}
    with session_scope(factory) as s:
        hook = TargetIn("hook", TargetKind.WEBHOOK, {}, secrets)
        create_target(session=s, settings=settings, handle="mia", data=hook, now=NOW)
        s.execute(update(PublishTarget).values(needs_reauth=True))  # a refused token refresh
    sign_in(app_client, "admin")
    assert "needs re-authorisation" in app_client.get("/targets").text
    csrf = csrf_of(app_client)
    bad = {"csrf_token": csrf, "url": "ftp://nowhere", "signing_key": "s" * 32}
    answer = app_client.post("/targets/hook/secrets", data=bad)
    assert answer.status_code == 422 and 'id="hook-url-error"' in answer.text
    assert "ftp://nowhere" not in answer.text  # a secret is never sent back
    good = {**bad, "url": "https://hooks.example.test/new"}
    done = app_client.post("/targets/hook/secrets", data=good)
    assert "new secrets stored" in done.text
    with factory() as s:
        target = s.scalars(select(PublishTarget).where(PublishTarget.name == "hook")).one()
        assert target.needs_reauth is False and "hooks.example" not in str(target.secrets_encrypted)


def test_a_page_import_past_two_mebibytes_is_read_whole(
    editor_page: TestClient, factory: sessionmaker[Session]
) -> None:
    """The page once read 2 MiB of the upload and imported what it got; the whole file counts."""
    first = b"kind,handle,at,scene\npost,mia,2026-12-24 18:00,travel\n"
    data = first + b"\n" * (3 * 1024 * 1024) + b"post,mia,2026-12-25 18:00,travel\n"
    files = {"file": ("plan.csv", data, "text/csv")}
    answer = editor_page.post(
        "/plan/import", data={"csrf_token": csrf_of(editor_page)}, files=files
    )
    assert answer.status_code == 200 and "imported 2 post(s)" in answer.text
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Post)) == 2
