"""The API does what the CLI does, through the same pipeline code: lists and details with
signed image links, actions answering 202 with the new state, Idempotency-Key, bad input as
422 naming the field with nothing written, imports all or nothing, signed media with 304s."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import Influencer, Post, PostEvent, PostStatus, TargetKind
from pipeline.db import session_scope
from pipeline.media.storage import LocalStorage
from pipeline.planning.imports import MAX_IMPORT_BYTES
from pipeline.publishers.targets import TargetIn, create_target
from pipeline.settings import Settings
from pipeline.steps.claims import Dispatch
from pipeline.steps.moves import Step, move
from tests.conftest import NOW, add_post
from tests.studio_kit import add_images
from tests.unit.studio.conftest import bearer

S = PostStatus


def awaiting(factory: sessionmaker[Session], settings: Settings, *, at=NOW) -> int:
    """A rendered post waiting for approval, with its image files."""
    with session_scope(factory) as s:
        post_id = add_post(s, at=at, caption_text="Hello")
        s.execute(Post.__table__.update().where(Post.id == post_id).values(generation=1))
        for dst in (S.GENERATING, S.GENERATED, S.RENDERING, S.AWAITING_APPROVAL):
            src = s.scalar(select(Post.status).where(Post.id == post_id))
            move(s, post_id, expected=src, to=dst, actor="test")
        s.execute(Post.__table__.update().where(Post.id == post_id).values(caption="Hello #mia"))
        add_images(s, LocalStorage(settings.storage_dir), post_id, 1)
    return post_id


def test_the_post_list_filters_and_pages_with_a_cursor(
    app_client: TestClient, tokens: dict[str, str], factory: sessionmaker[Session]
) -> None:
    with session_scope(factory) as s:
        ids = [add_post(s, at=NOW + timedelta(hours=i)) for i in range(5)]
    headers = bearer(tokens["editor-read"])
    first = app_client.get("/api/v1/posts", params={"limit": 2}, headers=headers).json()
    assert [p["id"] for p in first["items"]] == ids[:2]
    second = app_client.get(
        "/api/v1/posts", params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
    ).json()
    assert [p["id"] for p in second["items"]] == ids[2:4]
    window = {
        "from": (NOW + timedelta(hours=1)).isoformat(),
        "to": (NOW + timedelta(hours=3)).isoformat(),
    }
    ranged = app_client.get("/api/v1/posts", params=window, headers=headers).json()
    assert [p["id"] for p in ranged["items"]] == ids[1:3] and ranged["next_cursor"] is None
    none = app_client.get("/api/v1/posts", params={"needs_person": "true"}, headers=headers)
    assert none.json()["items"] == []


def test_post_detail_has_signed_images_history_and_generator(
    app_client: TestClient,
    tokens: dict[str, str],
    factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    post_id = awaiting(factory, settings)
    detail = app_client.get(f"/api/v1/posts/{post_id}", headers=bearer(tokens["viewer"])).json()
    assert detail["status"] == "awaiting_approval" and detail["generator"] == "preview"
    assert [e["to_status"] for e in detail["events"]][-1] == "awaiting_approval"
    image = detail["images"][0]
    assert image["url"].startswith("http://127.0.0.1:8000/media/posts/")
    fetched = app_client.get(image["url"])  # public and signed: no credentials needed
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/jpeg"
    again = app_client.get(image["url"], headers={"If-None-Match": fetched.headers["etag"]})
    assert again.status_code == 304
    assert app_client.head(image["url"]).status_code == 200
    forged = image["url"].replace("sig=", "sig=x")
    assert app_client.get(forged).status_code == 403
    assert app_client.get("/media/posts/1/none.jpg?expires=1&sig=x").status_code == 403


def test_approving_answers_202_with_the_new_state_and_sends_the_claim(
    app_client: TestClient,
    tokens: dict[str, str],
    factory: sessionmaker[Session],
    settings: Settings,
    sent: list[Dispatch],
) -> None:
    post_id = awaiting(factory, settings)
    answer = app_client.post(f"/api/v1/posts/{post_id}/approve", headers=bearer(tokens["editor"]))
    assert answer.status_code == 202
    assert answer.json() == {"post_id": post_id, "status": "publishing", "queued": True}
    assert [(d.step, d.post_id) for d in sent] == [(Step.PUBLISH, post_id)]


def test_a_repeated_idempotency_key_returns_the_first_answer_without_acting_twice(
    app_client: TestClient,
    tokens: dict[str, str],
    factory: sessionmaker[Session],
    settings: Settings,
    sent: list[Dispatch],
) -> None:
    post_id = awaiting(factory, settings)
    with factory() as s:
        before = s.scalar(select(func.count()).where(PostEvent.post_id == post_id))
    headers = {**bearer(tokens["editor"]), "Idempotency-Key": "k-123"}
    first = app_client.post(f"/api/v1/posts/{post_id}/generate", headers=headers)
    second = app_client.post(f"/api/v1/posts/{post_id}/generate", headers=headers)
    assert first.status_code == second.status_code == 202
    assert (
        first.json()
        == second.json()
        == {"post_id": post_id, "status": "generating", "queued": True}
    )
    assert second.headers["idempotent-replayed"] == "true"
    assert len(sent) == 1
    with factory() as s:
        after = s.scalar(select(func.count()).where(PostEvent.post_id == post_id))
        assert after == before + 1  # one move to generating, not two
    other = app_client.post(f"/api/v1/posts/{post_id}/cancel", headers=headers)
    assert other.status_code == 422 and "another request" in other.json()["detail"][0]["msg"]


def test_rejecting_needs_a_note_and_keeps_the_post_from_going_out(
    app_client: TestClient,
    tokens: dict[str, str],
    factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    post_id = awaiting(factory, settings)
    headers = bearer(tokens["editor"])
    empty = app_client.post(f"/api/v1/posts/{post_id}/reject", json={"note": ""}, headers=headers)
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "note"]
    done = app_client.post(
        f"/api/v1/posts/{post_id}/reject", json={"note": "off brand"}, headers=headers
    )
    assert done.json()["status"] == "cancelled"
    again = app_client.post(f"/api/v1/posts/{post_id}/approve", headers=headers)
    assert again.status_code == 422 and "only posts awaiting approval" in again.text


def test_a_caption_edit_is_checked_against_instagram_limits(
    app_client: TestClient,
    tokens: dict[str, str],
    factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    post_id = awaiting(factory, settings)
    headers = bearer(tokens["editor"])
    tags = " ".join(f"#t{i}" for i in range(31))
    refused = app_client.post(
        f"/api/v1/posts/{post_id}/caption", json={"caption": tags}, headers=headers
    )
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "caption"]
    done = app_client.post(
        f"/api/v1/posts/{post_id}/caption", json={"caption": "New words"}, headers=headers
    )
    assert done.status_code == 202 and done.json()["status"] == "awaiting_approval"
    with factory() as s:
        post = s.get_one(Post, post_id)
        assert post.caption == "New words"
        assert (
            s.scalars(select(PostEvent.detail).where(PostEvent.post_id == post_id)).all()[-1]
            == "caption edited"
        )


def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    app_client: TestClient, tokens: dict[str, str], factory: sessionmaker[Session]
) -> None:
    headers = bearer(tokens["editor"])
    body = {"handle": "zoe", "display_name": "Zoe", "timezone": "Mars/Olympus"}
    answer = app_client.post("/api/v1/influencers", json=body, headers=headers)
    assert answer.status_code == 422
    problem = answer.json()["detail"][0]
    assert problem["loc"] == ["body", "timezone"] and "Mars/Olympus" in problem["msg"]
    scene = app_client.post(
        "/api/v1/posts", json={"handle": "mia", "at": "+1h", "scene": "moon"}, headers=headers
    )
    assert scene.json()["detail"][0]["loc"] == ["body", "scene"]
    typed = app_client.post(
        "/api/v1/posts", json={"handle": "mia", "at": "+1h", "images": "x"}, headers=headers
    )
    assert typed.status_code == 422 and typed.json()["detail"][0]["loc"] == ["body", "images"]
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Influencer)) == 1
        assert s.scalar(select(func.count()).select_from(Post)) == 0


def test_a_one_off_post_and_a_calendar_are_planned_through_the_api(
    app_client: TestClient, tokens: dict[str, str]
) -> None:
    headers = bearer(tokens["editor"])
    post = app_client.post(
        "/api/v1/posts",
        json={"handle": "mia", "at": "2026-12-24 18:00", "images": 3},
        headers=headers,
    )
    assert post.status_code == 201 and post.json()["media_type"] == "carousel"
    rule = {
        "handle": "mia",
        "name": "daily",
        "days": "daily",
        "times": "09:00",
        "scenes": ["travel"],
    }
    made = app_client.post("/api/v1/calendars", json=rule, headers=headers)
    assert made.status_code == 201 and made.json()["rules"][0].endswith("09:00")
    edited = app_client.patch(
        "/api/v1/calendars/mia/daily", json={"times": "10:30"}, headers=headers
    )
    assert edited.status_code == 200 and edited.json()["rules"][0].endswith("10:30")
    paused = app_client.post("/api/v1/calendars/mia/daily/pause", headers=headers)
    assert paused.json()["changed"] is True
    bad = app_client.patch("/api/v1/calendars/mia/daily", json={"times": "25:00"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "times"]


def test_an_import_with_a_bad_row_imports_nothing_and_lists_every_error(
    app_client: TestClient, tokens: dict[str, str], factory: sessionmaker[Session]
) -> None:
    plan = (
        "kind,handle,at,scene\n"
        "post,mia,2026-12-24 18:00,travel\n"
        "post,mia,2026-12-25 18:00,moon\n"
        "post,bob,2026-12-26 18:00,\n"
    )
    files = {"file": ("plan.csv", plan.encode(), "text/csv")}
    answer = app_client.post("/api/v1/imports", files=files, headers=bearer(tokens["editor"]))
    assert answer.status_code == 422
    messages = [d["msg"] for d in answer.json()["detail"]]
    assert len(messages) == 2 and "row 2" in messages[0] and "row 3" in messages[1]
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Post)) == 0
    good = {
        "file": (
            "plan.csv",
            plan.splitlines()[0].encode() + b"\n" + plan.splitlines()[1].encode(),
            "text/csv",
        )
    }
    done = app_client.post("/api/v1/imports", files=good, headers=bearer(tokens["editor"]))
    assert done.status_code == 201 and done.json()["posts"] == 1


def test_an_upload_over_the_cap_is_refused_whole_not_cut_short_and_half_imported(
    app_client: TestClient, tokens: dict[str, str], factory: sessionmaker[Session]
) -> None:
    head = b"kind,handle,at,scene\npost,mia,2026-12-24 18:00,travel\n"
    data = head + b"\n" * (MAX_IMPORT_BYTES + 1 - len(head))
    files = {"file": ("plan.csv", data, "text/csv")}
    answer = app_client.post("/api/v1/imports", files=files, headers=bearer(tokens["editor"]))
    assert answer.status_code == 422
    assert "import at most" in answer.json()["detail"][0]["msg"]
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Post)) == 0


def test_status_reports_states_queues_and_the_generator(
    app_client: TestClient,
    tokens: dict[str, str],
    factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    awaiting(factory, settings, at=NOW + timedelta(hours=1))
    status = app_client.get("/api/v1/status", headers=bearer(tokens["viewer"])).json()
    assert status["by_state"] == {"awaiting_approval": 1} and status["needs_person"] == 1
    assert status["generator"] == "preview" and set(status["queues"]) == {"gpu", "cpu", "io"}


def test_the_openapi_schema_documents_every_api_route(
    app_client: TestClient, tokens: dict[str, str]
) -> None:
    schema = app_client.get("/api/v1/openapi.json", headers=bearer(tokens["viewer"])).json()
    paths = set(schema["paths"])
    assert {
        "/api/v1/posts",
        "/api/v1/posts/{post_id}/approve",
        "/api/v1/imports",
        "/api/v1/status",
    } <= paths
    assert all(p.startswith("/api/v1/") for p in paths)


def test_targets_are_listed_with_their_health_and_tested_without_publishing(
    app_client: TestClient,
    tokens: dict[str, str],
    factory: sessionmaker[Session],
    settings: Settings,
) -> None:

    with session_scope(factory) as s:
        box = TargetIn("box", TargetKind.OUTBOX, {"path": str(settings.data_dir / "box")})
        create_target(session=s, settings=settings, handle="mia", data=box, now=NOW)
    listed = app_client.get("/api/v1/targets", headers=bearer(tokens["viewer"])).json()
    assert listed == [
        {
            "name": "box",
            "kind": "outbox",
            "handle": "mia",
            "needs_reauth": False,
            "token_expires_at": None,
        }
    ]
    checked = app_client.post("/api/v1/targets/box/check", headers=bearer(tokens["admin"])).json()
    assert checked["ok"] is True and "writable" in checked["detail"]
    assert list((settings.data_dir / "box").iterdir()) == []  # the probe leaves nothing behind
