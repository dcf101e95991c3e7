"""``/api/v1`` planning: influencers, characters (with the LoRA file checked), calendars and
their rules (add, edit, pause, resume, delete) and CSV/YAML imports, all through the same
planning functions as ``ryla``.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, File, Path, Request, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin.access import Principal
from admin.studio.core import Studio, editor, input_errors, reader, studio_of
from admin.studio.schemas import (
    CalendarIn,
    CalendarOut,
    CalendarPatch,
    CharacterIn,
    CharacterOut,
    HoldOut,
    ImportOut,
    InfluencerIn,
    InfluencerOut,
)
from admin.studio.uploads import import_upload, read_upload
from models import Character, Influencer
from pipeline.errors import InputError
from pipeline.planning import holds
from pipeline.planning.calendars import add_rule, edit_calendar, list_calendars
from pipeline.planning.imports import ImportRejected
from pipeline.planning.influencers import (
    CharacterIn as NewCharacter,
)
from pipeline.planning.influencers import (
    InfluencerIn as NewInfluencer,
)
from pipeline.planning.influencers import (
    create_character,
    create_influencer,
    get_influencer,
)
from pipeline.planning.rules import CalendarSettingsIn, RuleIn

__all__ = [
    "add_calendar_route",
    "add_character_route",
    "add_influencer_route",
    "calendars_route",
    "characters_route",
    "delete_calendar_route",
    "edit_calendar_route",
    "import_route",
    "influencers_route",
    "lora_state",
    "pause_calendar_route",
    "pause_influencer_route",
    "plan_router",
    "resume_calendar_route",
    "resume_influencer_route",
    "rule_of",
]

plan_router = APIRouter(prefix="/api/v1", tags=["planning"])
Handle = Annotated[str, Path(max_length=30)]
Name = Annotated[str, Path(max_length=100)]


def _influencer_out(row: Influencer) -> InfluencerOut:
    return InfluencerOut(
        id=row.id,
        handle=row.handle,
        display_name=row.display_name,
        timezone=row.timezone,
        approval_required=row.approval_required,
        active=row.active,
        hashtags=list(row.default_hashtags),
    )


@plan_router.get("/influencers", response_model=list[InfluencerOut])
def influencers_route(
    request: Request, _: Annotated[Principal, Depends(reader)]
) -> list[InfluencerOut]:
    with studio_of(request).session() as session:
        rows = session.scalars(select(Influencer).order_by(Influencer.handle).limit(1000))
        return [_influencer_out(row) for row in rows]


@plan_router.post("/influencers", response_model=InfluencerOut, status_code=201)
def add_influencer_route(
    request: Request, body: InfluencerIn, _: Annotated[Principal, Depends(editor)]
) -> InfluencerOut:
    data = NewInfluencer(
        handle=body.handle,
        display_name=body.display_name,
        timezone=body.timezone,
        persona=body.persona,
        voice=body.voice,
        caption_template=body.caption_template,
        default_hashtags=body.hashtags,
        approval_required=body.approval_required,
    )
    with input_errors(list(InfluencerIn.model_fields)), studio_of(request).session() as session:
        return _influencer_out(create_influencer(session=session, data=data))


def _hold(
    request: Request, principal: Principal, handle: str, name: str | None, pause: bool
) -> HoldOut:
    studio = studio_of(request)
    actor = f"studio:{principal.username}"
    now, settings = studio.clock(), studio.settings
    with input_errors(["handle", "name"]), studio.session() as session:
        if name is None and pause:
            report = holds.pause_influencer(session=session, handle=handle, actor=actor)
        elif name is None:
            report = holds.resume_influencer(
                session=session, handle=handle, settings=settings, now=now, actor=actor
            )
        elif pause:
            report = holds.pause_calendar(session=session, handle=handle, name=name, actor=actor)
        else:
            report = holds.resume_calendar(
                session=session, handle=handle, name=name, settings=settings, now=now, actor=actor
            )
    return HoldOut(**vars(report))


@plan_router.post("/influencers/{handle}/pause", response_model=HoldOut)
def pause_influencer_route(
    request: Request, handle: Handle, principal: Annotated[Principal, Depends(editor)]
) -> HoldOut:
    """Hold every post of the influencer where it is."""
    return _hold(request, principal, handle, None, pause=True)


@plan_router.post("/influencers/{handle}/resume", response_model=HoldOut)
def resume_influencer_route(
    request: Request, handle: Handle, principal: Annotated[Principal, Depends(editor)]
) -> HoldOut:
    """Release the posts; slots past the grace window become missed, never a burst."""
    return _hold(request, principal, handle, None, pause=False)


def lora_state(path: str | None) -> str:
    """Whether this machine has the character's LoRA file: none, found or missing."""
    if not path:
        return "none"
    return "found" if FilePath(path).expanduser().is_file() else "missing"


def _character_out(row: Character, handle: str) -> CharacterOut:
    return CharacterOut(
        id=row.id,
        handle=handle,
        name=row.name,
        seed_policy=row.seed_policy,
        seed=row.seed,
        lora_path=row.lora_path,
        lora=lora_state(row.lora_path),
    )


@plan_router.get("/influencers/{handle}/characters", response_model=list[CharacterOut])
def characters_route(
    request: Request, handle: Handle, _: Annotated[Principal, Depends(reader)]
) -> list[CharacterOut]:
    with input_errors(["handle"]), studio_of(request).session() as session:
        influencer = get_influencer(session, handle)
        rows = session.scalars(
            select(Character).where(Character.influencer_id == influencer.id).order_by(Character.id)
        )
        return [_character_out(row, handle) for row in rows]


@plan_router.post("/influencers/{handle}/characters", response_model=CharacterOut, status_code=201)
def add_character_route(
    request: Request, handle: Handle, body: CharacterIn, _: Annotated[Principal, Depends(editor)]
) -> CharacterOut:
    """Add a character; ``lora`` in the answer says whether this machine has the LoRA file."""
    with input_errors(list(CharacterIn.model_fields)), studio_of(request).session() as session:
        created = create_character(
            session=session, handle=handle, data=NewCharacter(**body.model_dump())
        )
        return _character_out(created, handle)


@plan_router.get("/calendars", response_model=list[CalendarOut])
def calendars_route(
    request: Request, _: Annotated[Principal, Depends(reader)], handle: str | None = None
) -> list[CalendarOut]:
    studio = studio_of(request)
    with input_errors(["handle"]), studio.session() as session:
        rows = list_calendars(session, handle=handle, now=studio.clock())
    return [CalendarOut(**vars(row)) for row in rows]


def rule_of(body: CalendarIn | CalendarPatch) -> tuple[RuleIn, CalendarSettingsIn]:
    rule = RuleIn(
        days=body.days,
        times=body.times,
        rrule=body.rrule,
        start=body.start,
        scenes=body.scenes,
        environments=body.environments,
        outfits=body.outfits,
        caption_templates=body.caption_templates,
        caption_text=body.caption,
        hashtags=body.hashtags,
    )
    return rule, CalendarSettingsIn(body.lead_minutes, body.formats, body.horizon_days)


@plan_router.post("/calendars", response_model=CalendarOut, status_code=201)
def add_calendar_route(
    request: Request, body: CalendarIn, _: Annotated[Principal, Depends(editor)]
) -> CalendarOut:
    """Add a calendar with a slot rule, or another rule to an existing calendar."""
    studio = studio_of(request)
    rule, settings_in = rule_of(body)
    with input_errors(list(CalendarIn.model_fields)), studio.session() as session:
        calendar, _created = add_rule(
            session=session,
            handle=body.handle,
            calendar_name=body.name,
            rule=rule,
            settings_in=settings_in,
            character=body.character,
            settings=studio.settings,
            now=studio.clock(),
        )
        session.flush()
        return _calendar_out(session, studio, body.handle, calendar.name)  # the name as stored


@plan_router.patch("/calendars/{handle}/{name}", response_model=CalendarOut)
def edit_calendar_route(
    request: Request,
    handle: Handle,
    name: Name,
    body: CalendarPatch,
    _: Annotated[Principal, Depends(editor)],
) -> CalendarOut:
    """Change a rule or the calendar's settings; only unclaimed future posts are re-planned."""
    studio = studio_of(request)
    rule, settings_in = rule_of(body)
    with input_errors(list(CalendarPatch.model_fields)), studio.session() as session:
        edit_calendar(
            session=session,
            handle=handle,
            name=name,
            rule=rule,
            settings_in=settings_in,
            rule_id=body.rule,
            settings=studio.settings,
            now=studio.clock(),
        )
        session.flush()
        return _calendar_out(session, studio, handle, name)


def _calendar_out(session: Session, studio: Studio, handle: str, name: str) -> CalendarOut:
    """The calendar as the list shows it, read before the change commits."""
    rows = list_calendars(session, handle=handle, now=studio.clock())
    return CalendarOut(**vars(next(r for r in rows if r.name == name)))


@plan_router.post("/calendars/{handle}/{name}/pause", response_model=HoldOut)
def pause_calendar_route(
    request: Request, handle: Handle, name: Name, principal: Annotated[Principal, Depends(editor)]
) -> HoldOut:
    return _hold(request, principal, handle, name, pause=True)


@plan_router.post("/calendars/{handle}/{name}/resume", response_model=HoldOut)
def resume_calendar_route(
    request: Request, handle: Handle, name: Name, principal: Annotated[Principal, Depends(editor)]
) -> HoldOut:
    return _hold(request, principal, handle, name, pause=False)


@plan_router.delete("/calendars/{handle}/{name}", response_model=HoldOut)
def delete_calendar_route(
    request: Request, handle: Handle, name: Name, principal: Annotated[Principal, Depends(editor)]
) -> HoldOut:
    """Delete a calendar: its future posts are cancelled, its history kept."""
    actor = f"studio:{principal.username}"
    with input_errors(["handle", "name"]), studio_of(request).session() as session:
        done = holds.delete_calendar(session=session, handle=handle, name=name, actor=actor)
    return HoldOut(changed=True, cancelled=done.cancelled)


@plan_router.post(
    "/imports",
    response_model=ImportOut,
    status_code=201,
    responses={422: {"description": "Nothing imported: one error per bad row."}},
)
async def import_route(
    request: Request,
    file: Annotated[UploadFile, File(description="A .csv, .yaml or .yml plan")],
    _: Annotated[Principal, Depends(editor)],
) -> ImportOut | JSONResponse:
    """Import posts and rules: every row checked, all or nothing."""
    name, data = await read_upload(file)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_import, request, name, data)


def _import(request: Request, name: str, data: bytes) -> ImportOut | JSONResponse:
    try:
        done = import_upload(studio_of(request), name, data)
    except InputError as exc:  # ImportRejected lists every bad row
        return _rows_rejected(exc.errors if isinstance(exc, ImportRejected) else [str(exc)])
    return ImportOut(**vars(done))


def _rows_rejected(errors: list[str]) -> JSONResponse:
    detail = [{"loc": ["body", "file"], "msg": line, "type": "value_error"} for line in errors]
    return JSONResponse({"detail": detail}, status_code=422)
