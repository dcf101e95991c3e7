"""The pages a person reads: the calendar (week or month, one influencer or all), the feed
grid, the approval queue, a post (updating live while it moves) and the status overview.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from admin.studio.api_status import broker_view
from admin.studio.core import input_errors, studio_of
from admin.studio.pages.render import page, signed_in
from models import Influencer, PostStatus
from pipeline.browse.calendar import (
    MONTH_DAYS,
    WEEK_DAYS,
    calendar_view,
    month_grid_start,
    week_start,
)
from pipeline.browse.feed import feed_grid
from pipeline.browse.overview import overview
from pipeline.browse.posts import post_detail
from pipeline.browse.review import review_queue
from pipeline.planning.times import zone

__all__ = [
    "LIVE",
    "calendar_page",
    "feed_page",
    "home",
    "post_live",
    "post_page",
    "queue_page",
    "status_page",
    "views_router",
]

views_router = APIRouter(include_in_schema=False)
S = PostStatus
# While a post is in one of these, its page asks for news every few seconds.
LIVE = {S.GENERATING, S.GENERATED, S.RENDERING, S.APPROVED, S.PUBLISHING, S.READY, S.PLANNED}
Handle = Annotated[str | None, Query(max_length=30)]


def _handles(request: Request) -> list[str]:
    with studio_of(request).session() as session:
        stmt = select(Influencer.handle).order_by(Influencer.handle).limit(500)
        return list(session.scalars(stmt))


@views_router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    signed_in(request)
    return RedirectResponse("/calendar", status_code=303)


# The days a calendar page may show: its grid and its links a month either side stay in range.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)


@views_router.get("/calendar", response_class=HTMLResponse)
def calendar_page(
    request: Request,
    handle: Handle = None,
    view: Literal["month", "week"] = "month",
    day: Annotated[date | None, Query(ge=FIRST_DAY, le=LAST_DAY)] = None,
    tz: Annotated[str, Query(max_length=64)] = "UTC",
) -> Response:
    signed_in(request)
    studio = studio_of(request)
    handle = handle or None
    with input_errors(["handle", "tz"]):
        today = day or studio.clock().astimezone(zone(tz)).date()
    first = month_grid_start(today) if view == "month" else week_start(today)
    days = MONTH_DAYS if view == "month" else WEEK_DAYS
    with input_errors(["handle", "tz"]), studio.session() as session:
        shown = calendar_view(session, first=first, days=days, handle=handle, zone_name=tz)
    step = timedelta(days=31) if view == "month" else timedelta(days=7)
    anchor = today.replace(day=15) if view == "month" else today
    return page(
        request,
        "calendar.html",
        cal=shown,
        view=view,
        today=today,
        handle=handle or "",
        handles=_handles(request),
        tz=tz,
        previous=(anchor - step).isoformat(),
        following=(anchor + step).isoformat(),
    )


@views_router.get("/feed", response_class=HTMLResponse)
def feed_page(request: Request, handle: Handle = None) -> Response:
    signed_in(request)
    handles = _handles(request)
    handle = handle or (handles[0] if handles else None)
    tiles = []
    if handle:
        with input_errors(["handle"]), studio_of(request).session() as session:
            tiles = feed_grid(session, handle=handle)
    return page(request, "feed.html", tiles=tiles, handle=handle or "", handles=handles)


@views_router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, handle: Handle = None, notice: str = "") -> Response:
    signed_in(request)
    with input_errors(["handle"]), studio_of(request).session() as session:
        queue = review_queue(session, handle=handle or None)
    return page(
        request,
        "queue.html",
        queue=queue,
        handle=handle or "",
        handles=_handles(request),
        notice=notice[:300],
    )


def _post(request: Request, post_id: int) -> object:
    with input_errors(["post_id"]), studio_of(request).session() as session:
        return post_detail(session, post_id)


@views_router.get("/posts/{post_id}", response_class=HTMLResponse)
def post_page(
    request: Request, post_id: Annotated[int, Path(ge=1, lt=2**31)], notice: str = ""
) -> Response:
    signed_in(request)
    detail = _post(request, post_id)
    return page(request, "post.html", post=detail, live=LIVE, notice=notice[:300])


@views_router.get("/posts/{post_id}/live", response_class=HTMLResponse)
def post_live(request: Request, post_id: Annotated[int, Path(ge=1, lt=2**31)]) -> Response:
    """The changing part of a post's page, for the page to swap in while the post moves."""
    signed_in(request)
    detail = _post(request, post_id)
    return page(request, "post_live.html", post=detail, live=LIVE)


@views_router.get("/status", response_class=HTMLResponse)
def status_page(request: Request) -> Response:
    signed_in(request)
    studio = studio_of(request)
    with studio.session() as session:
        seen = overview(session, now=studio.clock(), upcoming=10)
    queues, workers = broker_view(studio)
    return page(
        request,
        "status.html",
        seen=seen,
        states=[str(s) for s in PostStatus],
        queues=queues,
        workers=workers,
        setting=str(studio.settings.generator),
    )
