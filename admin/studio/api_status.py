"""``/api/v1/status`` (posts by state, queues, workers, the generator, what comes next) and
``/api/v1/targets`` (health, re-authorisation with new secrets, a test without publishing).
"""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Path, Request

from admin.access import Principal
from admin.studio.core import Studio, admin_user, input_errors, reader, studio_of
from admin.studio.present import Links, post_out
from admin.studio.schemas import SecretsIn, StatusOut, TargetCheckOut, TargetOut
from pipeline.browse.overview import overview
from pipeline.browse.review import target_health
from pipeline.publishers.checks import check_target
from pipeline.publishers.targets import get_target, set_target_secrets

__all__ = [
    "broker_view",
    "check_route",
    "reauthorise_route",
    "status_route",
    "status_router",
    "targets_route",
]

status_router = APIRouter(prefix="/api/v1", tags=["status and targets"])
TargetName = Annotated[str, Path(max_length=100)]


def broker_view(studio: Studio) -> tuple[dict[str, int | None], list[str]]:
    """Queue depths and the workers that answer, from the broker (hints, not the record)."""
    from tasks.app import create_app as create_celery
    from tasks.queues import queue_depths, workers_seen

    app = create_celery(studio.settings)
    try:
        return queue_depths(app), workers_seen(app)
    finally:
        app.close()


@status_router.get("/status", response_model=StatusOut)
def status_route(request: Request, _: Annotated[Principal, Depends(reader)]) -> StatusOut:
    studio = studio_of(request)
    with studio.session() as session:
        seen = overview(session, now=studio.clock())
    queues, workers = broker_view(studio)
    links = Links.of(studio, absolute=True)
    return StatusOut(
        by_state=seen.by_state,
        needs_person=seen.needs_person,
        next_up=[post_out(row, links) for row in seen.next_up],
        generator=seen.generator.name if seen.generator else None,
        generator_preview=seen.generator.preview if seen.generator else None,
        generator_setting=str(studio.settings.generator),
        targets_needing_reauth=seen.targets_needing_reauth,
        queues=queues,
        workers=workers,
    )


@status_router.get("/targets", response_model=list[TargetOut])
def targets_route(request: Request, _: Annotated[Principal, Depends(reader)]) -> list[TargetOut]:
    """Every publish target and whether it needs a person (re-authorisation)."""
    with studio_of(request).session() as session:
        return [TargetOut(**vars(t)) for t in target_health(session)]


@status_router.post("/targets/{name}/secrets", response_model=TargetOut)
def reauthorise_route(
    request: Request,
    name: TargetName,
    body: SecretsIn,
    _: Annotated[Principal, Depends(admin_user)],
) -> TargetOut:
    """Re-authorise a target with new secrets; posts that waited for it resume."""
    studio = studio_of(request)
    given = {k: v for k, v in body.model_dump().items() if v}
    with input_errors(["name", *SecretsIn.model_fields]), studio.session() as session:
        set_target_secrets(
            session=session, settings=studio.settings, name=name, secrets=given, now=studio.clock()
        )
        session.flush()
        health = next(t for t in target_health(session) if t.name == name)
    return TargetOut(**vars(health))


@status_router.post("/targets/{name}/check", response_model=TargetCheckOut)
def check_route(
    request: Request, name: TargetName, _: Annotated[Principal, Depends(admin_user)]
) -> TargetCheckOut:
    """Test a target without publishing: outbox writable, webhook answers a signed test event,
    Instagram token reads the publishing quota."""
    studio = studio_of(request)
    with input_errors(["name"]), studio.session() as session:
        target = get_target(session, name)
        session.expunge(target)
    with httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0)) as client:
        result = check_target(target, settings=studio.settings, client=client, now=studio.clock())
    return TargetCheckOut(name=name, **vars(result))
