"""``ryla target add|token|list``: where posts go (outbox, signed webhook, Instagram).

Secrets come from an environment variable, else one line each on standard input when it is not
a terminal (scripts), else a hidden prompt; never plain command-line values that would land in
shell history.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from sqlalchemy import select

from admin.context import BadInput, CliContext
from models import Influencer, PublishTarget, TargetKind, utcnow
from pipeline.publishers.targets import (
    ACCEPT_PREVIEWS,
    TargetIn,
    create_target,
    set_target_secrets,
)

__all__ = ["target", "target_add", "target_list", "target_token"]


_SECRET_ENV = {
    "access_token": "RYLA_TARGET_ACCESS_TOKEN",
    "signing_key": "RYLA_TARGET_SIGNING_KEY",
    "url": "RYLA_TARGET_WEBHOOK_URL",
}


_SECRETS_OF = {
    TargetKind.INSTAGRAM: ("access_token",),
    TargetKind.WEBHOOK: ("url", "signing_key"),
    TargetKind.OUTBOX: (),
}


def _ask_secrets(kind: TargetKind) -> dict[str, str]:
    values = {}
    for key in _SECRETS_OF[kind]:
        env = _SECRET_ENV[key]
        values[key] = os.environ.get(env) or _read_secret(key.replace("_", " "), env)
    return values


def _read_secret(label: str, env: str) -> str:
    stdin = sys.stdin
    if stdin is not None and stdin.isatty():
        return str(
            click.prompt(f"{label} (or set {env})", hide_input=True, default="", show_default=False)
        )
    line = stdin.readline().strip() if stdin is not None else ""
    if not line:
        raise BadInput(
            f"no {label}: set {env} or pipe it on standard input (there is no terminal to ask on)"
        )
    return line


@click.group()
def target() -> None:
    """Publish targets: the outbox, a signed webhook, or an Instagram account."""


@target.command("add")
@click.argument("handle")
@click.argument("name")
@click.option("--kind", type=click.Choice([k.value for k in TargetKind]), required=True)
@click.option("--path", default=None, help="outbox: the folder (default: RYLA_DATA_DIR/outbox).")
@click.option("--ig-user-id", default=None, help="instagram: the Instagram user id.")
@click.option(
    "--base-url",
    default=None,
    help="instagram: https://graph.instagram.com (default) or graph.facebook.com.",
)
@click.option("--api-version", default=None, help="instagram: Graph API version, e.g. v24.0.")
@click.option(
    "--accept-previews",
    is_flag=True,
    help="A test target: it takes the preview generator's placeholder images (never use it "
    "for a real account).",
)
@click.pass_obj
def target_add(
    obj: CliContext,
    handle: str,
    name: str,
    kind: str,
    path: str | None,
    ig_user_id: str | None,
    base_url: str | None,
    api_version: str | None,
    accept_previews: bool,
) -> None:
    """Add a publish target for an influencer (its first target is its default).

    \b
    Secrets never go on the command line:
      instagram  access token   RYLA_TARGET_ACCESS_TOKEN
      webhook    URL            RYLA_TARGET_WEBHOOK_URL
                 signing key    RYLA_TARGET_SIGNING_KEY
    Unset ones are read one line each from standard input when it is not a terminal, in that
    order (e.g. printf '%s\\n' "$TOKEN" | ryla target add ...), else asked for, hidden.

    Instagram and webhook targets never receive placeholder images unless created with
    --accept-previews; the outbox always takes them.
    """
    config = {
        k: v
        for k, v in (
            ("path", str(Path(path).expanduser().absolute()) if path else None),
            ("ig_user_id", ig_user_id),
            ("base_url", base_url),
            ("api_version", api_version),
        )
        if v
    }
    if accept_previews and TargetKind(kind) is TargetKind.OUTBOX:  # before asking for secrets
        raise BadInput("--accept-previews is for instagram and webhook test targets")
    data = TargetIn(name, TargetKind(kind), config, _ask_secrets(TargetKind(kind)), accept_previews)
    with obj.session() as session:
        created = create_target(
            session=session, settings=obj.settings, handle=handle, data=data, now=utcnow()
        )
        test = " as a test target that accepts previews" if accept_previews else ""
        click.echo(f"target {created.name} ({created.kind}) added for {handle}{test}")


@target.command("token")
@click.argument("name")
@click.pass_obj
def target_token(obj: CliContext, name: str) -> None:
    """Enter new secrets for a target (e.g. a new token); its waiting posts resume.

    Read like `ryla target add` reads them: environment, standard input, or a hidden prompt.
    """
    with obj.session() as session:
        kind = session.scalars(select(PublishTarget.kind).where(PublishTarget.name == name)).first()
        secrets = _ask_secrets(kind) if kind else {}
        set_target_secrets(
            session=session, settings=obj.settings, name=name, secrets=secrets, now=utcnow()
        )
    click.echo(f"target {name}: secrets replaced")


@target.command("list")
@click.pass_obj
def target_list(obj: CliContext) -> None:
    """Every target, its kind and whether it needs a person."""
    with obj.session() as session:
        rows = session.execute(
            select(
                PublishTarget.name,
                PublishTarget.kind,
                Influencer.handle,
                PublishTarget.needs_reauth,
                PublishTarget.config,
            )
            .join(Influencer, Influencer.id == PublishTarget.influencer_id, isouter=True)
            .order_by(PublishTarget.id)
        ).all()
    if not rows:
        click.echo("no targets: posts go to the outbox folder")
    for name, kind, handle, reauth, config in rows:
        flag = "  NEEDS RE-AUTHORISATION" if reauth else ""
        if config.get(ACCEPT_PREVIEWS) is True:
            flag += "  test target: accepts previews"
        click.echo(f"{name:<24} {kind.value:<10} {handle or '-'}{flag}")
