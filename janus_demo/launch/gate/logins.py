"""Logins behind `--auth`: throttled guessing without lockouts, the cookie table, logouts from this site only.

gradio's `/login` strips the user name and never slows guessing; its `/logout` ends every session of the user
from any page that links to it. The gate answers:
- guesses are counted per address, per address and user name, and per user name (`ClientLedger`): the right
  password from an address that has not failed for that user still gets in, so nobody can lock a user out;
- the cookies of successful logins map to their user (the gate binds sessions and jobs to logins), at most
  `tokens_per_user` per user: one user logging in again and again forgets only their own oldest cookies;
- a logout whose request came from another site (Sec-Fetch-Site, Origin, Referer) is refused.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from http.cookies import CookieError, SimpleCookie

from starlette.requests import Request

from janus_demo.launch.gate.asgi import Message, Receive, Refused, Scope, Send, header, replay, watch_response
from janus_demo.launch.gate.bodies import read_body
from janus_demo.launch.gate.headers import same_site
from janus_demo.service.clients import ClientLedger

LOGIN_BODY_LIMIT = 64 * 1024
LOGIN_READ_S = 10.0
INCORRECT = "Incorrect credentials."
CROSS_SITE_LOGOUT = "Logout refused: it came from another site."
COOKIE_PREFIX = "access-token"


class Logins:
    """The login cookies the gate saw succeed, per user, and the checks around /login and /logout."""

    def __init__(self, ledger: ClientLedger, tokens_per_user: int = 256) -> None:
        self.ledger, self.tokens_per_user = ledger, tokens_per_user
        self._users: dict[str, str] = {}  # cookie value -> user
        self._tokens: dict[str, OrderedDict[str, None]] = {}  # user -> their cookie values, oldest first
        self._lock = threading.Lock()

    async def login(self, scope: Scope, receive: Receive, send: Send, app, ip: str) -> None:
        """Throttled per address and user name; the user name must match exactly; remember the cookie."""
        body = await read_body(scope, receive, LOGIN_BODY_LIMIT, LOGIN_READ_S)
        form = await Request(dict(scope), replay(body, receive)).form()
        user = str(form.get("username") or "")
        if refusal := self.ledger.login_refusal(ip, user):
            raise Refused(429, refusal, [(b"retry-after", b"60")])
        if user != user.strip():  # gradio strips it, so " alice" would log in as alice
            self.ledger.login_failed(ip, user)
            raise Refused(400, INCORRECT)
        status, cookies = 0, []

        def seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                cookies.extend(value for name, value in message.get("headers", []) if name.lower() == b"set-cookie")

        await app(scope, replay(body, receive), watch_response(send, seen))
        if status == 200:
            self._remember(user, _login_tokens(cookies))
        elif 400 <= status < 500:
            self.ledger.login_failed(ip, user)

    @staticmethod
    def logout_refusal(scope: Scope) -> str | None:
        """A logout must come from this site's own page (or no page at all: a typed URL, an API client)."""
        return None if same_site(scope) else CROSS_SITE_LOGOUT

    def user(self, scope: Scope) -> str | None:
        """The login behind this request's cookie, as the gate saw it succeed; None without one."""
        cookie = header(scope, b"cookie")
        if not cookie:
            return None
        try:
            cookies = SimpleCookie(cookie)
        except CookieError:
            return None
        with self._lock:
            for name, morsel in cookies.items():
                if name.startswith(COOKIE_PREFIX) and morsel.value in self._users:
                    return self._users[morsel.value]
        return None

    def forget(self, user: str | None) -> None:
        """gradio's logout ends every session of the user: forget their cookies too."""
        with self._lock:
            for token in self._tokens.pop(user, {}) if user is not None else ():
                self._users.pop(token, None)

    def _remember(self, user: str, tokens: list[str]) -> None:
        with self._lock:
            own = self._tokens.setdefault(user, OrderedDict())
            for token in tokens:
                self._users[token] = user
                own[token] = None
                own.move_to_end(token)
            while len(own) > self.tokens_per_user:
                oldest, _ = own.popitem(last=False)
                self._users.pop(oldest, None)


def _login_tokens(set_cookies: list[bytes]) -> list[str]:
    """The values of gradio's login cookies in a login response's Set-Cookie headers."""
    tokens = []
    for line in set_cookies:
        try:
            cookie = SimpleCookie(line.decode("latin-1"))
        except CookieError:
            continue
        tokens += [morsel.value for name, morsel in cookie.items() if name.startswith(COOKIE_PREFIX)]
    return tokens
