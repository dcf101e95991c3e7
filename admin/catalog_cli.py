"""``ryla influencer|character|calendar|post …``: add things and act on single posts.

Options that take lists accept commas or repetition (``--scene a,b`` or ``--scene a --scene b``).
"""

from __future__ import annotations

import click
from sqlalchemy import select

from admin.context import CliContext
from models import Post, PostEvent, SeedPolicy, utcnow
from pipeline.catalog import (
    CalendarIn,
    CharacterIn,
    InfluencerIn,
    InputError,
    PostIn,
    create_calendar,
    create_character,
    create_influencer,
    create_post,
    get_influencer,
)
from pipeline.dispatch import Step
from pipeline.generators.sizes import NATIVE_SIZES
from pipeline.schedule import parse_when, zone
from pipeline.triggers import approve, cancel, resolve_unknown, trigger

__all__ = ["calendar", "character", "influencer", "post"]


def _split(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@click.group()
def influencer() -> None:
    """Influencers: the accounts that post."""


@influencer.command("add")
@click.argument("handle")
@click.option("--name", "display_name", required=True, help="Display name.")
@click.option("--timezone", required=True, help="IANA zone, e.g. Europe/Berlin.")
@click.option("--persona", default="", help="Who they are, in a sentence or two.")
@click.option("--voice", default="", help="How their captions sound.")
@click.option(
    "--caption-template",
    default="{text}",
    show_default=True,
    help="Caption template; variables: {text} {scene} {environment} {day} {name}.",
)
@click.option("--hashtag", "hashtags", multiple=True, help="Default hashtags.")
@click.option("--approval/--no-approval", default=False, help="Hold posts for approval.")
@click.pass_obj
def influencer_add(
    obj: CliContext,
    handle: str,
    display_name: str,
    timezone: str,
    persona: str,
    voice: str,
    caption_template: str,
    hashtags: tuple[str, ...],
    approval: bool,
) -> None:
    """Add an influencer."""
    data = InfluencerIn(
        handle, display_name, timezone, persona, voice, caption_template, _split(hashtags), approval
    )
    with obj.session() as session:
        created = create_influencer(session=session, data=data)
        click.echo(f"influencer {created.handle} added (id {created.id}, {created.timezone})")


@click.group()
def character() -> None:
    """Characters: the face, style and seed policy an influencer's images keep."""


@character.command("add")
@click.argument("handle")
@click.argument("name")
@click.option("--identity", "identity_prompt", default="", help="Fixed identity prompt.")
@click.option("--age", default="")
@click.option("--ethnicity", default="")
@click.option("--hair", default="")
@click.option("--eyes", default="")
@click.option("--body", default="")
@click.option("--features", default="", help="Distinctive features (freckles, tattoo …).")
@click.option("--outfit", "default_outfit", default="", help="Default outfit.")
@click.option("--negative", "negative_prompt", default="", help="Negative prompt.")
@click.option("--trigger-word", default="", help="The LoRA's trigger word.")
@click.option("--lora", "lora_path", default=None, help="Path to a .safetensors LoRA.")
@click.option("--lora-scale", type=click.FloatRange(0, 2), default=1.0, show_default=True)
@click.option(
    "--seed-policy",
    type=click.Choice([p.value for p in SeedPolicy]),
    default=SeedPolicy.FIXED.value,
    show_default=True,
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_obj
def character_add(obj: CliContext, handle: str, seed_policy: str, **fields: object) -> None:
    """Add a character to an influencer."""
    data = CharacterIn(seed_policy=SeedPolicy(seed_policy), **fields)  # type: ignore[arg-type]
    with obj.session() as session:
        created = create_character(session=session, handle=handle, data=data)
        click.echo(f"character {created.name} added to {handle} (id {created.id})")


@click.group()
def calendar() -> None:
    """Content calendars: recurring slots in the influencer's time zone."""


@calendar.command("add")
@click.argument("handle")
@click.argument("name")
@click.option("--days", required=True, help="mon,wed,fri | daily | weekdays | weekends.")
@click.option("--times", required=True, help="Local HH:MM times, e.g. 09:00,18:30.")
@click.option("--character", default=None, help="Character name (default: the first).")
@click.option("--scene", "scenes", multiple=True, help="Scene presets to rotate.")
@click.option("--environment", "environments", multiple=True, help="Environments to rotate.")
@click.option("--outfit", "outfits", multiple=True, help="Outfits to rotate.")
@click.option("--format", "formats", multiple=True, help=f"One of {', '.join(NATIVE_SIZES)}.")
@click.option(
    "--lead-minutes",
    type=int,
    default=30,
    show_default=True,
    help="Generate this long before publishing.",
)
@click.option("--caption", default="", help="Caption text for every slot.")
@click.option("--hashtag", "hashtags", multiple=True)
@click.pass_obj
def calendar_add(
    obj: CliContext,
    handle: str,
    name: str,
    days: str,
    times: str,
    character: str | None,
    scenes: tuple[str, ...],
    environments: tuple[str, ...],
    outfits: tuple[str, ...],
    formats: tuple[str, ...],
    lead_minutes: int,
    caption: str,
    hashtags: tuple[str, ...],
) -> None:
    """Add a calendar with one slot rule; the beat plans its posts."""
    data = CalendarIn(
        name,
        days,
        times,
        character,
        _split(scenes),
        _split(environments),
        [o for o in outfits if o],
        _split(formats) or ["feed_portrait"],
        lead_minutes,
        caption,
        _split(hashtags),
    )
    with obj.session() as session:
        created = create_calendar(session=session, handle=handle, data=data)
        rule = created.rules[0]
        click.echo(
            f"calendar {created.name} added (id {created.id}): days {rule.days_of_week} "
            f"at {', '.join(rule.times)}"
        )


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
@click.option("--lead-minutes", type=click.IntRange(0, 1440), default=30, show_default=True)
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
    with obj.session() as session:
        tz = zone(get_influencer(session, handle).timezone)
        data = PostIn(
            parse_when(when, tz, utcnow()),
            character,
            scene,
            environment,
            outfit,
            prompt_extra,
            caption,
            _split(hashtags),
            _split(formats) or ["feed_portrait"],
            lead_minutes,
            images,
        )
        created = create_post(session=session, handle=handle, data=data)
        click.echo(f"post {created.id} planned for {created.local_publish_time}")


def _trigger(obj: CliContext, post_id: int, step: Step) -> None:
    from tasks.send import send_dispatches

    obj.require_broker()
    with obj.session() as session:
        dispatch = trigger(
            session, post_id, step, settings=obj.settings, now=utcnow(), actor=obj.actor
        )
    send_dispatches([dispatch], obj.app)
    click.echo(f"post {post_id}: {step} queued")


@post.command("generate")
@click.argument("post_id", type=int)
@click.pass_obj
def post_generate(obj: CliContext, post_id: int) -> None:
    """(Re)generate a post's image now."""
    _trigger(obj, post_id, Step.GENERATE)


@post.command("render")
@click.argument("post_id", type=int)
@click.pass_obj
def post_render(obj: CliContext, post_id: int) -> None:
    """(Re)render a post's Instagram formats and caption now."""
    _trigger(obj, post_id, Step.RENDER)


@post.command("publish")
@click.argument("post_id", type=int)
@click.pass_obj
def post_publish(obj: CliContext, post_id: int) -> None:
    """Publish a ready post now, ahead of its time."""
    _trigger(obj, post_id, Step.PUBLISH)


@post.command("approve")
@click.argument("post_id", type=int)
@click.pass_obj
def post_approve(obj: CliContext, post_id: int) -> None:
    """Approve a post that waits for approval."""
    from tasks.send import send_dispatches

    obj.require_broker()
    with obj.session() as session:
        dispatches = approve(session, post_id, settings=obj.settings, now=utcnow(), actor=obj.actor)
    send_dispatches(dispatches, obj.app)
    click.echo(f"post {post_id} approved")


@post.command("resolve")
@click.argument("post_id", type=int)
@click.option(
    "--published/--not-published",
    required=True,
    help="What you found on the account for a post whose outcome is unknown.",
)
@click.option("--media-id", default=None, help="The Instagram media id, when published.")
@click.pass_obj
def post_resolve(obj: CliContext, post_id: int, published: bool, media_id: str | None) -> None:
    """Settle a post whose publish could not be verified (status unknown)."""
    with obj.session() as session:
        resolve_unknown(
            session,
            post_id,
            published=published,
            external_id=media_id,
            now=utcnow(),
            actor=obj.actor,
        )
    click.echo(f"post {post_id}: {'published' if published else 'failed'}")


@post.command("cancel")
@click.argument("post_id", type=int)
@click.option("--reason", default="cancelled by a person")
@click.pass_obj
def post_cancel(obj: CliContext, post_id: int, reason: str) -> None:
    """Cancel a post that is not out yet."""
    with obj.session() as session:
        cancel(session, post_id, actor=obj.actor, reason=reason)
    click.echo(f"post {post_id} cancelled")


@post.command("show")
@click.argument("post_id", type=int)
@click.pass_obj
def post_show(obj: CliContext, post_id: int) -> None:
    """A post's fields and its history of state moves."""
    with obj.session() as session:
        found = session.get(Post, post_id)
        if found is None:
            raise InputError(f"unknown post {post_id}: list posts with `ryla status`")
        for label, value in (
            ("status", found.status),
            ("publish at", found.local_publish_time),
            ("scene", found.scene),
            ("environment", found.environment),
            ("seed", found.seed),
            ("prompt", found.prompt),
            ("caption", found.caption),
            ("error", found.last_error),
            ("published as", found.external_id),
        ):
            click.echo(f"{label:>13}: {value if value not in (None, '') else '-'}")
        events = select(PostEvent).where(PostEvent.post_id == post_id).order_by(PostEvent.id)
        for event in session.scalars(events):
            src = event.from_status or "-"
            click.echo(
                f"  {event.at:%Y-%m-%d %H:%M:%S} {src:>17} -> {event.to_status:<17} "
                f"{event.actor} {event.detail}"
            )
