"""``/api/v1/posts``: list (filters, cursor paging), one post in full, one-off posts, and the
actions a person can take on a post (each 202 with the post's new state, ``Idempotency-Key``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from admin.access import Principal
from admin.studio.actions import ActionIn, Replayed, fingerprint, idempotent, perform, status_after
from admin.studio.core import Studio, editor, input_errors, reader, studio_of
from admin.studio.present import Links, detail_out, post_out
from admin.studio.schemas import (
    CaptionIn,
    PostDetailOut,
    PostIn,
    PostOut,
    PostPageOut,
    RejectIn,
    ResolveIn,
    TriggerOut,
)
from models import PostStatus
from pipeline.browse.posts import MAX_PAGE, PostFilter, list_posts, post_detail
from pipeline.planning.influencers import get_influencer
from pipeline.planning.posts import PostIn as PlannedPost
from pipeline.planning.posts import create_post
from pipeline.planning.times import parse_when, zone
from pipeline.steps.claims import Dispatch

__all__ = [
    "caption_route",
    "create_route",
    "detail_route",
    "list_route",
    "posts_router",
    "reject_route",
    "resolve_route",
]

posts_router = APIRouter(prefix="/api/v1/posts", tags=["posts"])
PostId = Annotated[int, Path(ge=1, lt=2**31)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Send the same key again to get the first answer back, not a second action.",
    ),
]
_FILTER_FIELDS = ("state", "handle", "from", "to", "needs_person", "cursor", "limit")


@posts_router.get("", response_model=PostPageOut)
def list_route(
    request: Request,
    _: Annotated[Principal, Depends(reader)],
    state: Annotated[list[PostStatus] | None, Query()] = None,
    handle: Annotated[str | None, Query(max_length=30)] = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    needs_person: bool = False,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    newest_first: bool = False,
) -> PostPageOut:
    """Posts in publish order; ``needs_person`` keeps those awaiting approval, failed, unknown or
    missed. Follow ``next_cursor`` for the next page."""
    studio = studio_of(request)
    filters = PostFilter(tuple(state or ()), handle, start, end, needs_person)
    with input_errors(_FILTER_FIELDS), studio.session() as session:
        page = list_posts(
            session, filters=filters, cursor=cursor, limit=limit, newest_first=newest_first
        )
    links = Links.of(studio, absolute=True)
    return PostPageOut(items=[post_out(r, links) for r in page.rows], next_cursor=page.next_cursor)


@posts_router.get("/{post_id}", response_model=PostDetailOut)
def detail_route(
    request: Request, post_id: PostId, _: Annotated[Principal, Depends(reader)]
) -> PostDetailOut:
    """One post: images (signed links), caption, alt text, generator, seed, history, attempts."""
    studio = studio_of(request)
    with input_errors(["post_id"]), studio.session() as session:
        detail = post_detail(session, post_id)
    return detail_out(detail, Links.of(studio, absolute=True))


@posts_router.post("", response_model=PostOut, status_code=201)
def create_route(
    request: Request,
    body: PostIn,
    principal: Annotated[Principal, Depends(editor)],
    key: IdempotencyKey = None,
) -> JSONResponse:
    """A one-off post (``images`` 2-10 make a carousel). Sent again with the same
    ``Idempotency-Key``, the first answer comes back and no second post is made."""
    studio = studio_of(request)
    request_print = fingerprint("POST", request.url.path, body.model_dump_json().encode())

    def work(session: Any) -> tuple[dict[str, Any], list[Dispatch]]:
        made = _create(session, studio, body)
        return made.model_dump(mode="json"), []

    try:
        with input_errors([*PostIn.model_fields, "Idempotency-Key"]):
            answer = idempotent(
                studio, principal, key, request_print, work, status_code=201, queues=False
            )
    except Replayed as replay:
        return JSONResponse(replay.body, replay.status_code, {"Idempotent-Replayed": "true"})
    return JSONResponse(answer, 201)


def _create(session: Session, studio: Studio, body: PostIn) -> PostOut:
    """The post, made in the caller's transaction, as the API shows it."""
    tz = zone(get_influencer(session, body.handle).timezone)
    data = PlannedPost(
        publish_at=parse_when(body.at, tz, studio.clock()),
        character=body.character,
        scene=body.scene,
        environment=body.environment,
        outfit=body.outfit,
        prompt_extra=body.prompt,
        caption_text=body.caption,
        hashtags=body.hashtags,
        formats=body.formats,
        lead_minutes=body.lead_minutes,
        images=body.images,
    )
    created = create_post(
        session=session,
        handle=body.handle,
        data=data,
        settings=studio.settings,
        now=studio.clock(),
    )
    detail = post_detail(session, created.id)
    return post_out(detail.row, Links.of(studio, absolute=True))


async def _act(
    request: Request, principal: Principal, post_id: int, action: ActionIn, key: str | None
) -> JSONResponse:
    studio = studio_of(request)
    request_print = fingerprint(request.method, request.url.path, await request.body())

    def work(session: Any) -> tuple[dict[str, Any], list[Dispatch]]:
        claims = perform(session, studio, post_id, action, actor=f"studio:{principal.username}")
        return {"post_id": post_id, "status": status_after(session, post_id)}, claims

    fields = ["post_id", "note", "caption", "published", "media_id", "Idempotency-Key"]
    try:
        with input_errors(fields):
            body = await run_in_threadpool(idempotent, studio, principal, key, request_print, work)
    except Replayed as replay:
        return JSONResponse(replay.body, replay.status_code, {"Idempotent-Replayed": "true"})
    return JSONResponse(TriggerOut(**body).model_dump(mode="json"), 202)


_ACCEPTED: dict[int | str, dict[str, Any]] = {202: {"model": TriggerOut}}


def _simple_action(name: str, summary: str) -> None:
    async def route(
        request: Request,
        post_id: PostId,
        principal: Annotated[Principal, Depends(editor)],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        return await _act(request, principal, post_id, ActionIn(name), key)

    route.__name__ = f"{name}_route"
    posts_router.post(
        f"/{{post_id}}/{name}", status_code=202, responses=_ACCEPTED, summary=summary
    )(route)


for _name, _summary in (
    ("generate", "Generate (or regenerate) the post's images now"),
    ("render", "Render its Instagram formats and caption again"),
    ("publish", "Publish now, ahead of its time"),
    ("approve", "Approve a post awaiting approval"),
    ("cancel", "Cancel a post that is not out yet"),
):
    _simple_action(_name, _summary)


@posts_router.post("/{post_id}/reject", status_code=202, responses=_ACCEPTED)
async def reject_route(
    request: Request,
    post_id: PostId,
    body: RejectIn,
    principal: Annotated[Principal, Depends(editor)],
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Turn a post awaiting approval down, with a note saying why: it will not go out."""
    return await _act(request, principal, post_id, ActionIn("reject", note=body.note), key)


@posts_router.post("/{post_id}/caption", status_code=202, responses=_ACCEPTED)
async def caption_route(
    request: Request,
    post_id: PostId,
    body: CaptionIn,
    principal: Annotated[Principal, Depends(editor)],
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Replace the caption (checked against Instagram's limits) before the post goes out."""
    return await _act(request, principal, post_id, ActionIn("caption", caption=body.caption), key)


@posts_router.post("/{post_id}/resolve", status_code=202, responses=_ACCEPTED)
async def resolve_route(
    request: Request,
    post_id: PostId,
    body: ResolveIn,
    principal: Annotated[Principal, Depends(editor)],
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Settle a post whose publish could not be verified: it is on the account, or it is not."""
    action = ActionIn("resolve", published=body.published, media_id=body.media_id)
    return await _act(request, principal, post_id, action, key)
