"""``ryla user add|list|password|role|disable|enable`` and ``ryla token create|list|revoke``:
who may use the studio.

Passwords are prompted for with hidden input (or read from RYLA_USER_PASSWORD), never taken as
command-line values; a token is printed once and only its SHA-256 is kept.
"""

from __future__ import annotations

import os
import sys

import click

from admin.access import (
    create_token,
    create_user,
    list_tokens,
    list_users,
    revoke_token,
    set_access,
    set_password,
)
from admin.context import ROW_ID, BadInput, CliContext
from models import Role, TokenScope, utcnow

__all__ = [
    "token",
    "token_create",
    "token_list",
    "token_revoke",
    "user",
    "user_add",
    "user_disable",
    "user_enable",
    "user_list",
    "user_password",
    "user_role",
]

_PASSWORD_ENV = "RYLA_USER_PASSWORD"
_ROLES = click.Choice([r.value for r in Role])


def _ask_password(obj: CliContext) -> str:
    """From the variable, else asked twice on the terminal; with neither, one error line (the
    database is checked first: a command before `ryla init` says that instead)."""
    obj.require_schema()
    if given := os.environ.get(_PASSWORD_ENV):
        return given
    if sys.stdin is None or not sys.stdin.isatty():
        raise BadInput(
            f"no password given and no terminal to ask on: set {_PASSWORD_ENV} "
            f"(e.g. {_PASSWORD_ENV}=… ryla user add NAME)"
        )
    return str(
        click.prompt(
            f"password (or set {_PASSWORD_ENV})", hide_input=True, confirmation_prompt=True
        )
    )


@click.group()
def user() -> None:
    """Studio users: viewers read, editors plan and approve, admins also manage targets."""


@user.command("add")
@click.argument("username")
@click.option(
    "--role",
    type=_ROLES,
    default=Role.EDITOR.value,
    show_default=True,
)
@click.pass_obj
def user_add(obj: CliContext, username: str, role: str) -> None:
    """Add a user who signs in to the studio (`ryla serve`) with a password."""
    password = _ask_password(obj)
    with obj.session() as session:
        created = create_user(
            session=session, username=username, password=password, role=Role(role)
        )
        click.echo(f"user {created.username} added ({created.role})")


@user.command("list")
@click.pass_obj
def user_list(obj: CliContext) -> None:
    """Users, their roles and last sign-in."""
    with obj.session() as session:
        users = list_users(session)
        if not users:
            click.echo("no users yet: add one with `ryla user add NAME --role admin`")
        for found in users:
            last = f"{found.last_login_at:%Y-%m-%d %H:%M}" if found.last_login_at else "never"
            state = "" if found.active else "  (disabled)"
            click.echo(f"{found.username:<24} {found.role.value:<7} last sign-in {last}{state}")


@user.command("password")
@click.argument("username")
@click.pass_obj
def user_password(obj: CliContext, username: str) -> None:
    """Set a new password; the user's open sessions end."""
    password = _ask_password(obj)
    with obj.session() as session:
        set_password(session=session, username=username, password=password)
    click.echo(f"user {username}: password changed, sessions ended")


@user.command("role")
@click.argument("username")
@click.argument("role", type=_ROLES, metavar="ROLE")
@click.pass_obj
def user_role(obj: CliContext, username: str, role: str) -> None:
    """Give a user another role; it applies from their next request."""
    with obj.session() as session:
        done = set_access(session=session, username=username, role=Role(role))
    click.echo(
        f"user {done.username} is now {done.role}"
        if done.changed
        else f"user {done.username} was already {done.role}: nothing changed"
    )


@user.command("disable")
@click.argument("username")
@click.pass_obj
def user_disable(obj: CliContext, username: str) -> None:
    """Keep a user out: sessions end now, password and tokens are refused until re-enabled."""
    _switch(obj, username, active=False)


@user.command("enable")
@click.argument("username")
@click.pass_obj
def user_enable(obj: CliContext, username: str) -> None:
    """Let a disabled user in again (their tokens work again unless revoked)."""
    _switch(obj, username, active=True)


def _switch(obj: CliContext, username: str, *, active: bool) -> None:
    with obj.session() as session:
        done = set_access(session=session, username=username, active=active)
    what = "enabled" if active else "disabled"
    if not done.changed:
        click.echo(f"user {done.username} was already {what}: nothing changed")
        return
    tokens = f"{done.live_tokens} token{'' if done.live_tokens == 1 else 's'}"
    if active:
        click.echo(f"user {done.username} enabled: password and {tokens} work again")
    else:
        click.echo(
            f"user {done.username} disabled: {done.sessions_ended} session(s) ended; password "
            f"and {tokens} refused (`ryla token revoke` to end a token for good)"
        )


@click.group()
def token() -> None:
    """API tokens for integrations (n8n, Make, Zapier): read or write, shown once."""


@token.command("create")
@click.option("--user", "username", required=True, help="The user the token acts as.")
@click.option("--name", required=True, help="What uses it, e.g. 'n8n'.")
@click.option(
    "--scope",
    type=click.Choice([s.value for s in TokenScope]),
    default=TokenScope.READ.value,
    show_default=True,
    help="read: GET only; write: what the user's role allows.",
)
@click.pass_obj
def token_create(obj: CliContext, username: str, name: str, scope: str) -> None:
    """Create a token and print it once: send it as `Authorization: Bearer <token>`."""
    with obj.session() as session:
        text = create_token(
            session=session, username=username, name=name, scope=TokenScope(scope), now=utcnow()
        )
    click.echo(text)
    click.echo("store it now: it is not shown again", err=True)


@token.command("list")
@click.pass_obj
def token_list(obj: CliContext) -> None:
    """Tokens by id, with their user, scope and last use (never the token itself)."""
    with obj.session() as session:
        rows = list_tokens(session)
        if not rows:
            click.echo("no tokens yet: create one with `ryla token create`")
        for found, username in rows:
            used = f"{found.last_used_at:%Y-%m-%d %H:%M}" if found.last_used_at else "never"
            state = "  REVOKED" if found.revoked_at else ""
            click.echo(
                f"{found.id:>4} {found.prefix}…  {found.name:<20} {username:<16} "
                f"{found.scope.value:<5} used {used}{state}"
            )


@token.command("revoke")
@click.argument("token_id", type=ROW_ID)
@click.pass_obj
def token_revoke(obj: CliContext, token_id: int) -> None:
    """Revoke a token by its id (see `ryla token list`); it stops working at once."""
    with obj.session() as session:
        found = revoke_token(session=session, token_id=token_id, now=utcnow())
        click.echo(f"token {found.id} ({found.name}) revoked")
