"""The planning page: influencers, characters, calendars (pause, resume) and imports, each a
form whose errors are shown beside the field they are about, with what was typed kept.

Every form goes through the same planning functions as ``ryla`` and the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from admin.access import Principal
from admin.studio.api_plan import lora_state
from admin.studio.core import Studio, field_of, studio_of
from admin.studio.pages.render import form_of, page, signed_in
from admin.studio.uploads import import_upload, read_upload
from models import Character, Influencer, Role, SeedPolicy
from pipeline.errors import InputError
from pipeline.planning import holds
from pipeline.planning.calendars import add_rule, list_calendars
from pipeline.planning.imports import ImportRejected
from pipeline.planning.influencers import (
    CharacterIn,
    InfluencerIn,
    create_character,
    create_influencer,
)
from pipeline.planning.rules import CalendarSettingsIn, RuleIn

__all__ = [
    "add_calendar",
    "add_character",
    "add_influencer",
    "forms_router",
    "hold",
    "import_plan",
    "plan_page",
]

forms_router = APIRouter(include_in_schema=False)
FORM_FIELDS = {
    "influencer": ("handle", "display_name", "timezone", "caption_template", "hashtags"),
    "character": ("handle", "name", "identity_prompt", "hair", "seed", "lora_path"),
    "calendar": (
        "handle", "name", "days", "times", "rrule", "start", "scenes", "environments",
        "caption", "hashtags", "formats", "lead_minutes", "horizon_days",
    ),
}  # fmt: skip


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _whole(form: dict[str, str], name: str, default: int | None) -> int | None:
    text = form.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{name.replace('_', ' ')} {text!r} is not a whole number") from None


def _plan_context(studio: Studio) -> dict[str, Any]:
    with studio.session() as session:
        influencers = list(session.scalars(select(Influencer).order_by(Influencer.handle)))
        characters = session.execute(
            select(Character, Influencer.handle)
            .join(Influencer, Influencer.id == Character.influencer_id)
            .order_by(Influencer.handle, Character.name)
        ).all()
        calendars = list_calendars(session, handle=None, now=studio.clock())
    return {
        "influencers": influencers,
        "characters": [(c, h, lora_state(c.lora_path)) for c, h in characters],
        "calendars": calendars,
        "seed_policies": [p.value for p in SeedPolicy],
    }


@forms_router.get("/plan", response_class=HTMLResponse)
def plan_page(request: Request, notice: str = "") -> Response:
    signed_in(request)
    context = _plan_context(studio_of(request))
    return page(request, "plan.html", errors={}, values={}, notice=notice[:300], **context)


def _new_influencer(session: Session, form: dict[str, str], actor: str, studio: Studio) -> str:
    data = InfluencerIn(
        handle=form.get("handle", "").strip(),
        display_name=form.get("display_name", "").strip() or form.get("handle", ""),
        timezone=form.get("timezone", "").strip(),
        caption_template=form.get("caption_template") or "{text}",
        default_hashtags=_items(form.get("hashtags", "")),
        approval_required=form.get("approval_required") == "on",
    )
    created = create_influencer(session=session, data=data)
    return f"influencer {created.handle} added"


def _new_character(session: Session, form: dict[str, str], actor: str, studio: Studio) -> str:
    data = CharacterIn(
        name=form.get("name", "").strip(),
        identity_prompt=form.get("identity_prompt", ""),
        hair=form.get("hair", ""),
        trigger_word=form.get("trigger_word", ""),
        lora_path=form.get("lora_path", "").strip() or None,
        seed_policy=SeedPolicy(form.get("seed_policy") or SeedPolicy.FIXED.value),
        seed=_whole(form, "seed", 0) or 0,
    )
    created = create_character(session=session, handle=form.get("handle", ""), data=data)
    return f"character {created.name} added ({lora_state(created.lora_path)} LoRA)"


def _new_calendar(session: Session, form: dict[str, str], actor: str, studio: Studio) -> str:
    def listed(name: str) -> list[str] | None:
        return _items(form[name]) if form.get(name, "").strip() else None

    rule = RuleIn(
        days=form.get("days") or None,
        times=form.get("times") or None,
        rrule=form.get("rrule") or None,
        start=form.get("start") or None,
        scenes=listed("scenes"),
        environments=listed("environments"),
        caption_text=form.get("caption") or None,
        hashtags=listed("hashtags"),
    )
    settings_in = CalendarSettingsIn(
        _whole(form, "lead_minutes", None), listed("formats"), _whole(form, "horizon_days", None)
    )
    calendar, created = add_rule(
        session=session,
        handle=form.get("handle", ""),
        calendar_name=form.get("name", "").strip(),
        rule=rule,
        settings_in=settings_in,
        character=form.get("character") or None,
        settings=studio.settings,
        now=studio.clock(),
    )
    return f"calendar {calendar.name} {'added' if created else 'got another rule'}"


# A form's work: (session, the form's fields, the actor, the studio) -> the notice to show.
FormWork = Callable[[Session, dict[str, str], str, Studio], str]


async def _submit(request: Request, kind: str, work: FormWork) -> Response:
    principal: Principal = await run_in_threadpool(signed_in, request, Role.EDITOR)
    form = await form_of(request, principal)
    studio = studio_of(request)

    def run() -> Response:
        try:
            with studio.session() as session:
                notice = work(session, form, f"studio:{principal.username}", studio)
        except InputError as exc:
            field = field_of(str(exc), FORM_FIELDS[kind], exc) or "form"
            context = _plan_context(studio)
            errors = {kind: {field: str(exc)}}
            return page(
                request, "plan.html", status_code=422, errors=errors, values={kind: form}, **context
            )
        return RedirectResponse(f"/plan?notice={notice}#{kind}", status_code=303)

    return await run_in_threadpool(run)


@forms_router.post("/plan/influencers")
async def add_influencer(request: Request) -> Response:
    return await _submit(request, "influencer", _new_influencer)


@forms_router.post("/plan/characters")
async def add_character(request: Request) -> Response:
    return await _submit(request, "character", _new_character)


@forms_router.post("/plan/calendars")
async def add_calendar(request: Request) -> Response:
    return await _submit(request, "calendar", _new_calendar)


def _hold(session: Session, form: dict[str, str], actor: str, studio: Studio) -> str:
    handle, name, op = form.get("handle", ""), form.get("name") or None, form.get("op")
    now, settings = studio.clock(), studio.settings
    if op not in ("pause", "resume"):
        raise InputError(f"op {op!r} is not pause or resume")
    if name and op == "pause":
        holds.pause_calendar(session=session, handle=handle, name=name, actor=actor)
    elif name:
        holds.resume_calendar(
            session=session, handle=handle, name=name, settings=settings, now=now, actor=actor
        )
    elif op == "pause":
        holds.pause_influencer(session=session, handle=handle, actor=actor)
    else:
        holds.resume_influencer(
            session=session, handle=handle, settings=settings, now=now, actor=actor
        )
    return f"{handle}{'/' + name if name else ''}: {op}d"


@forms_router.post("/plan/hold")
async def hold(request: Request) -> Response:
    return await _submit(request, "calendar", _hold)


@forms_router.post("/plan/import")
async def import_plan(request: Request) -> Response:
    principal: Principal = await run_in_threadpool(signed_in, request, Role.EDITOR)
    form = await request.form()
    try:  # a file over 1 MiB is spooled to disk until the form is closed
        await form_of(request, principal)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return RedirectResponse("/plan?notice=choose a .csv or .yaml file to import", 303)
        name, data = await read_upload(upload)
    finally:
        await form.close()
    studio = studio_of(request)

    def run() -> Response:
        try:
            done = import_upload(studio, name, data)
        except InputError as exc:  # ImportRejected lists every bad row
            problems = exc.errors if isinstance(exc, ImportRejected) else [str(exc)]
            context = _plan_context(studio)
            errors = {"import": {"file": problems}}
            return page(request, "plan.html", status_code=422, errors=errors, values={}, **context)
        notice = f"imported {done.posts} post(s) and {done.rules} rule(s)"
        return RedirectResponse(f"/plan?notice={notice}#import", status_code=303)

    return await run_in_threadpool(run)
