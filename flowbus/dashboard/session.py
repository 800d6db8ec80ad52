"""Who is looking: the API's own bearer tokens, kept in a cookie.

A browser cannot put a bearer token on a page load or on an `EventSource`, so the sign-in
page takes the same JWT the API takes, checks it with the API's verifier, and keeps it in
an HttpOnly, SameSite=Strict cookie scoped to the dashboard. Every page forwards it to the
API as `Authorization: Bearer`, so roles are the API's: a viewer sees, an operator acts, an
admin manages definitions. With auth off (`flowbus dev`) nobody signs in and everyone acts
as the API's anonymous admin. Forms that change something are refused when the browser
says they came from another site.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlsplit

import jwt
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from flowbus.api.auth import ANONYMOUS_ADMIN, Principal, Role, TokenVerifier
from flowbus.api.problems import ApiProblem
from flowbus.dashboard.rendering import page

COOKIE = "flowbus_token"
HOME = "/ui/"


class SignInNeeded(Exception):
    """The page needs a signed-in person; `reason` says why the current one is not."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "sign in")
        self.reason = reason


class CrossSiteForm(Exception):
    """A form that changes something was posted from another site."""


@dataclass(frozen=True, slots=True)
class Person:
    """The signed-in person: what the API's verifier made of their token."""

    principal: Principal
    token: str | None
    auth_on: bool
    groups: tuple[str, ...] = field(default=())

    def may(self, role: str) -> bool:
        return self.principal.may(Role(role))

    @property
    def name(self) -> str:
        if not self.auth_on:
            return "everyone (auth off)"
        return self.principal.subject or "an unnamed token"

    @property
    def roles(self) -> str:
        return ", ".join(sorted(r.value for r in self.principal.roles)) or "none"


def _verifier(request: Request) -> TokenVerifier | None:
    verifier: TokenVerifier | None = request.app.state.api.state.verifier
    return verifier


def _unverified_claims(token: str) -> dict[str, Any]:
    """Claims of a token the verifier has just accepted (for display only)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _groups(claims: dict[str, Any]) -> tuple[str, ...]:
    raw = claims.get("groups")
    return tuple(str(g) for g in raw) if isinstance(raw, list) else ()


async def current_person(request: Request) -> Person:
    """The signed-in person, or `SignInNeeded`."""
    verifier = _verifier(request)
    if verifier is None:
        return Person(ANONYMOUS_ADMIN, None, auth_on=False)
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInNeeded
    try:
        principal = verifier.verify(token)
    except ApiProblem as refused:
        raise SignInNeeded(refused.detail) from None
    if not principal.may(Role.VIEWER):
        raise SignInNeeded("the token holds none of the roles viewer, operator or admin")
    return Person(principal, token, auth_on=True, groups=_groups(_unverified_claims(token)))


async def same_site(request: Request) -> None:
    """Refuse a state-changing form sent from another site (CSRF), as the browser reports
    it; the SameSite=Strict cookie already keeps the token off such requests."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CrossSiteForm
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise CrossSiteForm


Viewer = Annotated[Person, Depends(current_person)]
SameSite = Depends(same_site)


def _safe_next(target: str | None) -> str:
    """Only a path of the dashboard itself: never a redirect to another site."""
    if not target or not target.startswith("/ui/") or target.startswith("//"):
        return HOME
    return target


router = APIRouter(tags=["sign-in"])


@router.get("/sign-in", summary="The sign-in page: paste an API bearer token")
async def sign_in_page(
    request: Request,
    next_page: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    if _verifier(request) is None:
        return RedirectResponse(HOME, status_code=303)
    return page(
        request, "sign_in.html", None, next_page=_safe_next(next_page), reason=reason, error=None
    )


@router.post("/sign-in", summary="Check a bearer token and keep it in a cookie")
async def sign_in(
    request: Request,
    token: Annotated[str, Form(min_length=1, max_length=16000)],
    next_page: Annotated[str | None, Form(alias="next", max_length=2000)] = None,
    _: None = SameSite,
) -> Response:
    verifier = _verifier(request)
    target = _safe_next(next_page)
    if verifier is None:
        return RedirectResponse(HOME, status_code=303)
    token = token.strip()
    try:
        principal = verifier.verify(token)
    except ApiProblem as refused:
        return page(
            request,
            "sign_in.html",
            None,
            status_code=401,
            next_page=target,
            reason=None,
            error=refused.detail,
        )
    if not principal.may(Role.VIEWER):
        error = "this token holds none of the roles viewer, operator or admin"
        return page(
            request,
            "sign_in.html",
            None,
            status_code=403,
            next_page=target,
            reason=None,
            error=error,
        )
    expires = _unverified_claims(token).get("exp")
    max_age = max(1, int(expires - time.time())) if isinstance(expires, int | float) else None
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/sign-out", summary="Forget the token")
async def sign_out(_: None = SameSite) -> Response:
    response = RedirectResponse("/ui/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response
