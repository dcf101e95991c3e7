"""``ryla post add|generate|render|publish|approve|resolve|cancel|show``: single posts.

Triggers go through the same state machine and queues as the beat.
"""

from __future__ import annotations

import click
from sqlalchemy import select

from admin.context import ROW_ID, CliContext, given_values, split_values
from models import Influencer, MediaType, Post, PostEvent, utcnow
from pipeline.errors import NotFound
from pipeline.generators.sizes import NATIVE_SIZES
from pipeline.observe.logs import zoned
from pipeline.planning.influencers import (
    get_influencer,
)
from pipeline.planning.posts import PostIn, create_post
from pipeline.planning.times import parse_when, zone
from pipeline.steps.moves import Step
from pipeline.steps.previews import image_provenance
from pipeline.steps.resolve import Answer, resolve_unknown
from pipeline.steps.triggers import approve, cancel, trigger

__all__ = [
    "post",
    "post_add",
    "post_approve",
    "post_cancel",
    "post_generate",
    "post_publish",
    "post_render",
    "post_resolve",
    "post_show",
]


@click.group()
def post() -> None:
    """Single posts: add one-offs, run a step now, approve, cancel, inspect."""


@post.command("add")
@click.argument("handle")
@click.option(
    "--at",
    "when",
    required=True,
    help="'YYYY-MM-DD HH:MM' in the influencer's zone, 'now', '+30m' or ISO with offset.",
)
@click.option("--character", default=None)
@click.option("--scene", default="")
@click.option("--environment", default="")
@click.option("--outfit", default="")
@click.option("--prompt", "prompt_extra", default="", help="Extra prompt words.")
@click.option("--caption", default="")
@click.option("--hashtag", "hashtags", multiple=True)
@click.option("--format", "formats", multiple=True, help=f"One of {', '.join(NATIVE_SIZES)}.")
@click.option("--lead-minutes", type=int, default=30, show_default=True, help="0 to 1440.")
@click.option(
    "--images",
    type=int,
    default=1,
    show_default=True,
    help="2-10 make a carousel, every image at the first format's ratio.",
)
@click.pass_obj
def post_add(
    obj: CliContext,
    handle: str,
    when: str,
    character: str | None,
    scene: str,
    environment: str,
    outfit: str,
    prompt_extra: str,
    caption: str,
    hashtags: tuple[str, ...],
    formats: tuple[str, ...],
    lead_minutes: int,
    images: int,
) -> None:
    """Add a one-off post (or a carousel) at a given time."""
    now = utcnow()
    with obj.session() as session:
        tz = zone(get_influencer(session, handle).timezone)
        data = PostIn(
            parse_when(when, tz, now),
            character,
            scene,
            environment,
            outfit,
            prompt_extra,
            caption,
            split_values(hashtags),
            ["feed_portrait"] if (chosen := given_values(formats)) is None else chosen,
            lead_minutes,
            images,
        )
        created = create_post(
            session=session, handle=handle, data=data, settings=obj.settings, now=now
        )
        click.echo(f"post {created.id} planned for {created.local_publish_time}")
        if created.media_type is MediaType.STORY and (caption or created.hashtags):
            click.echo(
                "note: Instagram shows no caption on a story; webhook and outbox targets still "
                "get it",
                err=True,
            )


def _trigger(obj: CliContext, post_id: int, step: Step) -> None:
    from tasks.send import send_dispatches

    obj.require_schema()  # before the broker, whose folders the embedded one would make
    obj.require_broker()
    with obj.session() as session:
        dispatch = trigger(
            session, post_id, step, settings=obj.settings, now=utcnow(), actor=obj.actor
        )
    send_dispatches([dispatch], obj.app)
    click.echo(f"post {post_id}: {step} queued")


@post.command("generate")
@click.argument("post_id", type=ROW_ID)
@click.pass_obj
def post_generate(obj: CliContext, post_id: int) -> None:
    """(Re)generate a post's image now."""
    _trigger(obj, post_id, Step.GENERATE)


@post.command("render")
@click.argument("post_id", type=ROW_ID)
@click.pass_obj
def post_render(obj: CliContext, post_id: int) -> None:
    """(Re)render a post's Instagram formats and caption now."""
    _trigger(obj, post_id, Step.RENDER)


@post.command("publish")
@click.argument("post_id", type=ROW_ID)
@click.pass_obj
def post_publish(obj: CliContext, post_id: int) -> None:
    """Publish a ready post now, ahead of its time."""
    _trigger(obj, post_id, Step.PUBLISH)


@post.command("approve")
@click.argument("post_id", type=ROW_ID)
@click.pass_obj
def post_approve(obj: CliContext, post_id: int) -> None:
    """Approve a post that waits for approval."""
    from tasks.send import send_dispatches

    obj.require_schema()  # before the broker, whose folders the embedded one would make
    obj.require_broker()
    with obj.session() as session:
        dispatches = approve(session, post_id, settings=obj.settings, now=utcnow(), actor=obj.actor)
    send_dispatches(dispatches, obj.app)
    click.echo(f"post {post_id} approved")


@post.command("resolve")
@click.argument("post_id", type=ROW_ID)
@click.option(
    "--published/--not-published",
    default=None,
    help="What you found on the account. Without it, Instagram is only asked.",
)
@click.option("--media-id", default=None, help="The Instagram media id, when published.")
@click.option(
    "--skip-check",
    is_flag=True,
    help="Record your answer without asking Instagram (when it cannot be reached).",
)
@click.pass_obj
def post_resolve(
    obj: CliContext, post_id: int, published: bool | None, media_id: str | None, skip_check: bool
) -> None:
    """Settle a post whose publish could not be verified (status unknown).

    Instagram is asked first (the container's status and the media it made); your answer is
    recorded only when it does not contradict what Instagram says.
    """
    import httpx

    from pipeline.publishers import build_publisher

    timeout = httpx.Timeout(obj.settings.http_timeout_seconds, connect=5.0)
    with httpx.Client(timeout=timeout) as client, obj.session() as session:
        outcome = resolve_unknown(
            session,
            post_id,
            answer=Answer(published, media_id, skip_check),
            publisher_factory=lambda target: build_publisher(
                target, settings=obj.settings, clock=utcnow, client=client
            ),
            now=utcnow(),
            actor=obj.actor,
        )
    click.echo(outcome.message)


@post.command("cancel")
@click.argument("post_id", type=ROW_ID)
@click.option("--reason", default="cancelled by a person")
@click.pass_obj
def post_cancel(obj: CliContext, post_id: int, reason: str) -> None:
    """Cancel a post that is not out yet."""
    with obj.session() as session:
        cancel(session, post_id, actor=obj.actor, reason=reason)
    click.echo(f"post {post_id} cancelled")


@post.command("show")
@click.argument("post_id", type=ROW_ID)
@click.pass_obj
def post_show(obj: CliContext, post_id: int) -> None:
    """A post's fields and its history of state moves."""
    with obj.session() as session:
        found = session.get(Post, post_id)
        if found is None:
            raise NotFound(
                f"unknown post {post_id}: list posts with `ryla status`", field="post_id"
            )
        made = image_provenance(session, found)
        makers = ", ".join(made.generators) + (" (placeholders)" if made.placeholders else "")
        for label, value in (
            ("status", found.status),
            ("publish at", found.local_publish_time),
            ("scene", found.scene),
            ("environment", found.environment),
            ("seed", found.seed),
            ("images by", makers),
            ("prompt", found.prompt),
            # Before it is rendered, the text its caption will be made from.
            ("caption", found.caption or found.caption_text),
            ("error", found.last_error),
            ("published as", found.external_id),
        ):
            click.echo(f"{label:>13}: {value if value not in (None, '') else '-'}")
        # History in the influencer's zone, like the publish time above, and labelled with it.
        tz = zone(session.get_one(Influencer, found.influencer_id).timezone)
        events = select(PostEvent).where(PostEvent.post_id == post_id).order_by(PostEvent.id)
        for event in session.scalars(events):
            src = event.from_status or "-"
            click.echo(
                f"  {zoned(event.at, tz=tz)} {src:>17} -> {event.to_status:<17} "
                f"{event.actor} {event.detail}"
            )
