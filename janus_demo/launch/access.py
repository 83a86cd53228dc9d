"""Who may use the server: logins from --auth / --auth-file, and the rules for share links and MCP.

    logins = read_logins(settings)             # [("alice", "secret")], or None for an open server
    problem = access_problem(settings, logins)  # a one-line refusal, or None
    warning = access_warning(settings, logins)  # a one-line caution, or None

No gradio, no torch: `check_access_or_exit` turns a problem into `error: ...` and exit status 2 before app.py
imports the heavy libraries.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

from janus_demo.launch.settings import Settings

Login = tuple[str, str]


class AccessError(ValueError):
    """A login that cannot be read; the message names the flag or file and the line."""


def parse_login(text: str, where: str) -> Login:
    """'user:pass' -> ("user", "pass"). The password may contain ':'; neither part may be empty."""
    user, colon, password = text.partition(":")
    if not colon or not user.strip() or not password:
        raise AccessError(f"{where}: expected USER:PASS with both parts non-empty")
    return user.strip(), password


def read_auth_file(path: str) -> list[Login]:
    """One user:pass a line; blank lines and lines starting with # are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise AccessError(f"--auth-file {path}: cannot read it ({error.__class__.__name__})") from None
    logins = [
        parse_login(line, f"--auth-file {path}, line {number}")
        for number, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not logins:
        raise AccessError(f"--auth-file {path}: no user:pass lines in it")
    return logins


def read_logins(settings: Settings) -> list[Login] | None:
    """Every login from --auth and --auth-file together; None when neither is given."""
    logins = [parse_login(settings.auth, "--auth")] if settings.auth else []
    if settings.auth_file:
        logins += read_auth_file(settings.auth_file)
    return logins or None


def access_problem(settings: Settings, logins: list[Login] | None) -> str | None:
    """Why these settings must not start, in one line; None when they may."""
    if settings.mcp and logins:
        return (
            "--mcp cannot be combined with --auth/--auth-file: gradio's MCP server does not ask for the login "
            "(tool calls either fail or skip it). Serve MCP without a login, on a network you trust."
        )
    if settings.share and not logins and not settings.share_without_auth:
        return (
            "--share puts the app on a public link: add --auth USER:PASS or --auth-file PATH, "
            "or --share-without-auth to let anyone with the link use it."
        )
    return None


def access_warning(settings: Settings, logins: list[Login] | None) -> str | None:
    """A caution to print before serving, in one line; None when there is nothing to say."""
    if settings.share and not logins:
        return "sharing without a login: anyone with the link can use this app and its GPU."
    return None


def check_access_or_exit(settings: Settings) -> list[Login] | None:
    """The logins to require (None: an open server). Refuse unsafe settings in one line, exit status 2."""
    try:
        logins = read_logins(settings)
    except AccessError as error:
        exit_with(str(error))
    if problem := access_problem(settings, logins):
        exit_with(problem)
    if warning := access_warning(settings, logins):
        print(f"warning: {warning}", file=sys.stderr)
    return logins


def exit_with(message: str) -> NoReturn:
    """Say `error: <message>` on stderr and exit with status 2 (a setting to change, not a crash)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2) from None
