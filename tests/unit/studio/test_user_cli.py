"""``ryla user`` and ``ryla token``: people and integrations get in; nothing secret is echoed
back or kept in plain text, and bad input is one ``error:`` line with exit code 2."""

from __future__ import annotations

import pytest

from tests.unit.conftest import Invoke


def test_a_user_is_added_with_a_prompted_password_and_listed(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RYLA_USER_PASSWORD", "correct-horse-battery")
    added = ryla("user", "add", "ana", "--role", "admin")
    assert added.exit_code == 0 and added.output.strip() == "user ana added (admin)"
    listed = ryla("user", "list")
    assert "ana" in listed.output and "admin" in listed.output and "never" in listed.output
    assert "correct-horse-battery" not in added.output + listed.output


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (("user", "add", "ana"), "short", "error: password is 5 characters"),
        (("user", "add", "a b"), "correct-horse-battery", "error: invalid user name 'a b'"),
        (("token", "create", "--user", "nobody", "--name", "x"), "", "error: unknown user"),
        (("token", "revoke", "99"), "", "error: unknown token 99"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_code_2(
    ryla: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    password: str,
    message: str,
) -> None:
    monkeypatch.setenv("RYLA_USER_PASSWORD", password or "unused-password")
    result = ryla(*args)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith(message)


def test_a_token_is_shown_once_listed_by_prefix_and_revoked(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RYLA_USER_PASSWORD", "correct-horse-battery")
    ryla("user", "add", "ana")
    created = ryla("token", "create", "--user", "ana", "--name", "n8n", "--scope", "write")
    token = created.output.splitlines()[0]
    assert created.exit_code == 0 and token.startswith("ryla_") and len(token) > 40
    listed = ryla("token", "list").output
    assert token not in listed and token[:11] in listed and "n8n" in listed and "write" in listed
    assert ryla("token", "revoke", "1").output.strip() == "token 1 (n8n) revoked"
    assert "REVOKED" in ryla("token", "list").output


def test_no_password_and_no_terminal_is_one_line_naming_the_variable(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RYLA_USER_PASSWORD", raising=False)
    result = ryla("user", "add", "dave")  # CliRunner's standard input is no terminal
    assert result.exit_code == 2
    assert result.output == (
        "error: no password given and no terminal to ask on: set RYLA_USER_PASSWORD "
        "(e.g. RYLA_USER_PASSWORD=… ryla user add NAME)\n"
    )


def test_a_user_is_disabled_enabled_and_given_another_role(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RYLA_USER_PASSWORD", "correct-horse-battery")
    ryla("user", "add", "ana")
    ryla("token", "create", "--user", "ana", "--name", "n8n")
    disabled = ryla("user", "disable", "ana")
    assert disabled.exit_code == 0
    assert disabled.output.startswith("user ana disabled: 0 session(s) ended; password and 1 token")
    assert "(disabled)" in ryla("user", "list").output
    assert ryla("user", "disable", "ana").output.strip() == (
        "user ana was already disabled: nothing changed"
    )
    enabled = ryla("user", "enable", "ana").output.strip()
    assert enabled == "user ana enabled: password and 1 token work again"
    assert "(disabled)" not in ryla("user", "list").output
    assert ryla("user", "role", "ana", "admin").output.strip() == "user ana is now admin"
    assert "admin" in ryla("user", "list").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("user", "disable", "nobody"), "error: unknown user 'nobody'"),
        (("user", "enable", "nobody"), "error: unknown user 'nobody'"),
        (("user", "role", "nobody", "admin"), "error: unknown user 'nobody'"),
        (("user", "role", "ana", "owner"), "error: invalid value for 'ROLE': 'owner'"),
    ],
)
def test_access_changes_to_unknown_users_or_roles_are_one_error_line(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    monkeypatch.setenv("RYLA_USER_PASSWORD", "correct-horse-battery")
    ryla("user", "add", "ana")
    result = ryla(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
