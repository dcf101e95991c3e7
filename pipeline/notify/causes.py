"""What a person must hear about, read from the database: no step reports to this module.

Events (a post failed, ended ``unknown`` or was missed) come from ``post_events``; conditions
(a target needs re-authorisation, a quota window is full, a calendar is broken, no GPU worker)
from the rows' current state. Each finding says what happened and what to do, in one line each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from models import ContentCalendar, Influencer, Post, PostEvent, PostStatus, PublishTarget
from pipeline.observe.workers import gpu_last_seen
from pipeline.steps.claims import not_held

__all__ = [
    "CAUSES",
    "CONDITIONS",
    "EVENT_CAUSES",
    "Finding",
    "broken_calendar_findings",
    "condition_findings",
    "gpu_findings",
    "post_event_findings",
    "quota_findings",
    "reauth_findings",
]

S = PostStatus
# cause -> what one message about it is titled (singular, plural with {n}).
CAUSES: dict[str, tuple[str, str]] = {
    "post_failed": ("a post failed", "{n} posts failed"),
    "post_unknown": ("a post's publish could not be verified", "{n} posts' publishes unverified"),
    "post_missed": ("a post was missed", "{n} posts were missed"),
    "target_reauth": ("a publish target needs re-authorisation", "{n} targets need a new token"),
    "quota_full": ("a publishing quota is full", "{n} publishing quotas are full"),
    "calendar_broken": ("a calendar is broken", "{n} calendars are broken"),
    "gpu_missing": ("no GPU worker is running", "no GPU worker is running"),
}
EVENT_CAUSES = {S.FAILED: "post_failed", S.UNKNOWN: "post_unknown", S.MISSED: "post_missed"}
CONDITIONS = ("target_reauth", "quota_full", "calendar_broken", "gpu_missing")
# Planning marks a broken calendar with its reason in this column (issue 11); read only when
# the model has it, so this module works on a schema from before it.
BROKEN_CALENDAR_COLUMNS = ("broken_reason",)


@dataclass(frozen=True)
class Finding:
    cause: str
    ref: str  # what it is about: "post:12", "target:3", "gpu"
    summary: str
    hint: str


def _hint(cause: str, post_id: int, handle: str) -> str:
    if cause == "post_failed":
        return (
            f"see `ryla post show {post_id}`; retry with `ryla post generate {post_id}` "
            f"(or render / publish), or cancel it"
        )
    if cause == "post_unknown":
        return (
            f"check @{handle} on Instagram, then `ryla post resolve {post_id} --published` "
            "or `--not-published`"
        )
    return "nothing will be posted for this slot; add a new post if it still matters"


def post_event_findings(
    session: Session, *, after_id: int, limit: int = 1000
) -> list[tuple[int, Finding]]:
    """(event id, finding) for moves to failed, unknown or missed after ``after_id``."""
    rows = session.execute(
        select(
            PostEvent.id,
            PostEvent.post_id,
            PostEvent.to_status,
            PostEvent.detail,
            Influencer.handle,
            Post.local_publish_time,
        )
        .join(Post, Post.id == PostEvent.post_id)
        .join(Influencer, Influencer.id == Post.influencer_id)
        .where(PostEvent.id > after_id, PostEvent.to_status.in_(list(EVENT_CAUSES)))
        .order_by(PostEvent.id)
        .limit(limit)
    )
    found = []
    for event_id, post_id, to, detail, handle, when in rows:
        cause = EVENT_CAUSES[to]
        reason = f": {_one_line(detail)}" if detail else ""
        summary = f"post #{post_id} @{handle} ({when}) {to}{reason}"
        found.append(
            (event_id, Finding(cause, f"post:{post_id}", summary, _hint(cause, post_id, handle)))
        )
    return found


def reauth_findings(session: Session) -> list[Finding]:
    rows = session.execute(
        select(PublishTarget.id, PublishTarget.name, PublishTarget.kind, Influencer.handle)
        .join(Influencer, Influencer.id == PublishTarget.influencer_id, isouter=True)
        .where(PublishTarget.needs_reauth.is_(True))
        .order_by(PublishTarget.id)
    )
    return [
        Finding(
            "target_reauth",
            f"target:{target_id}",
            f"publish target {name} ({kind}, @{handle or '-'}) needs re-authorisation; "
            "its posts wait",
            f"enter a new token with `ryla target token {name}`",
        )
        for target_id, name, kind, handle in rows
    ]


def quota_findings(session: Session, *, now: datetime) -> list[Finding]:
    """Influencers whose ready posts wait for a full publishing window to free."""
    rows = session.execute(
        select(Influencer.id, Influencer.handle, func.count(), func.min(Post.next_attempt_at))
        .join(Post, Post.influencer_id == Influencer.id)
        .where(
            Post.status.in_([S.READY, S.APPROVED]),
            Post.next_attempt_at > now,
            # The failure policy records the refusal's message; every quota refusal says "quota
            # … used up" (a failed quota *read*, Instagram unreachable, is no full quota).
            func.lower(Post.last_error).like("%quota%used up%"),
        )
        .group_by(Influencer.id, Influencer.handle)
        .order_by(Influencer.id)
    )
    return [
        Finding(
            "quota_full",
            f"influencer:{influencer_id}",
            f"@{handle}: the publishing quota is used up; {count} post(s) wait until "
            f"{frees:%Y-%m-%d %H:%M} UTC",
            "nothing to do unless it is urgent: the posts go out when the window frees "
            "(fewer posts a day avoid it)",
        )
        for influencer_id, handle, count, frees in rows
    ]


def broken_calendar_findings(session: Session) -> list[Finding]:
    """Calendars marked broken by planning (issue 11's column), when this schema has it."""
    column = next(
        (
            getattr(ContentCalendar, n)
            for n in BROKEN_CALENDAR_COLUMNS
            if hasattr(ContentCalendar, n)
        ),
        None,
    )
    if column is None:
        return []
    rows = session.execute(
        select(ContentCalendar.id, ContentCalendar.name, Influencer.handle, column)
        .join(Influencer, Influencer.id == ContentCalendar.influencer_id)
        .where(column.is_not(None))
        .order_by(ContentCalendar.id)
    )
    return [
        Finding(
            "calendar_broken",
            f"calendar:{calendar_id}",
            f"calendar {handle}/{name} is broken and plans nothing: {_one_line(str(reason))}",
            f"fix it with `ryla calendar edit {handle} {name}` (see `ryla calendar list`)",
        )
        for calendar_id, name, handle, reason in rows
        if reason not in ("", False)
    ]


def gpu_findings(session: Session, *, now: datetime, silence: timedelta) -> list[Finding]:
    """No process consuming the gpu queue seen for ``silence`` while posts wait to generate."""
    last = gpu_last_seen(session)
    if last is not None and now - last <= silence:
        return []
    waiting = session.scalar(
        select(func.count())
        .select_from(Post)
        .where(
            or_(
                and_(Post.status == S.PLANNED, Post.generate_at <= now),
                Post.status == S.GENERATING,
            ),
            not_held(),
        )
    )
    if not waiting:
        return []
    since = f"since {last:%Y-%m-%d %H:%M} UTC" if last else "ever"
    return [
        Finding(
            "gpu_missing",
            "gpu",
            f"no GPU worker seen {since}; {waiting} post(s) wait to be generated",
            "start one: `ryla worker --queues gpu` (or `ryla run`), and check its log",
        )
    ]


def condition_findings(session: Session, *, now: datetime, silence: timedelta) -> list[Finding]:
    return [
        *reauth_findings(session),
        *quota_findings(session, now=now),
        *broken_calendar_findings(session),
        *gpu_findings(session, now=now, silence=silence),
    ]


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
