"""Bearer JWTs and roles.

A token is checked for its signature (HS256 with the shared secret, or RS256/ES256 with
the public key), its expiry (`exp` is required), and the configured issuer and audience.
Its roles claim (a list, or a space-separated string) holds `viewer`, `operator` or
`admin`; each role includes the ones before it. With auth disabled every request acts as
an admin without a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowbus.api.problems import ApiProblem
from flowbus.config import ApiAuthSettings

MIN_SECRET_BYTES = 32


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}
_ROLE_NAMES = frozenset(role.value for role in Role)


class AuthMisconfigured(ValueError):
    """The auth settings cannot verify any token (no key, or a weak secret)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's subject and roles."""

    subject: str | None
    roles: frozenset[Role]

    def may(self, role: Role) -> bool:
        return any(held.rank >= role.rank for held in self.roles)


ANONYMOUS_ADMIN = Principal(subject=None, roles=frozenset({Role.ADMIN}))


class TokenVerifier:
    """Checks bearer tokens against the auth settings."""

    def __init__(self, settings: ApiAuthSettings) -> None:
        self._settings = settings
        self._key = _key(settings)

    def verify(self, token: str) -> Principal:
        s = self._settings
        required = ["exp"] + (["iss"] if s.issuer else []) + (["aud"] if s.audience else [])
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[s.algorithm],
                issuer=s.issuer,
                audience=s.audience,
                leeway=s.leeway,
                options={"require": required, "verify_aud": s.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the token has expired", "invalid_token") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"the token is not valid: {exc}", "invalid_token") from None
        subject = claims.get("sub")
        return Principal(
            subject=subject if isinstance(subject, str) else None,
            roles=_roles(claims.get(s.roles_claim)),
        )


def _key(settings: ApiAuthSettings) -> Any:
    if settings.algorithm == "HS256":
        if settings.secret is None:
            raise AuthMisconfigured(
                "api.auth.secret is not set: give an HS256 secret "
                "(FLOWBUS_API__AUTH__SECRET), or a public key with algorithm RS256/ES256"
            )
        secret = settings.secret.get_secret_value().encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise AuthMisconfigured(
                f"api.auth.secret has {len(secret)} bytes; HS256 needs {MIN_SECRET_BYTES} or more"
            )
        return secret
    pem = settings.public_key
    if pem is None and settings.public_key_file is not None:
        try:
            pem = settings.public_key_file.read_text()
        except OSError as exc:
            raise AuthMisconfigured(f"api.auth.public_key_file: {exc}") from None
    if not pem:
        raise AuthMisconfigured(
            f"{settings.algorithm} needs api.auth.public_key or api.auth.public_key_file (PEM)"
        )
    algorithm = jwt.get_algorithm_by_name(settings.algorithm)
    try:
        return algorithm.prepare_key(pem)
    except (ValueError, jwt.InvalidKeyError) as exc:
        raise AuthMisconfigured(
            f"the {settings.algorithm} public key is not usable: {exc}"
        ) from None


def _roles(raw: Any) -> frozenset[Role]:
    names = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return frozenset(Role(n) for n in names if n in _ROLE_NAMES)


def _unauthorized(detail: str, error: str | None = None) -> ApiProblem:
    challenge = "Bearer" + (f' error="{error}"' if error else "")
    return ApiProblem(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})


_bearer = HTTPBearer(auto_error=False, bearerFormat="JWT", description="A JWT with `roles`.")


def requires(role: Role) -> Any:
    """A dependency that admits callers holding `role` (or a higher one) and gives their
    `Principal`; the same object per role, so a route resolves it once."""
    return _ADMITTERS[role]


def guarded(role: Role) -> dict[str, Any]:
    """Route arguments: check `role`, and state it in the OpenAPI document."""
    return {"dependencies": [requires(role)], "openapi_extra": {"x-required-role": role.value}}


def _admitter(role: Role) -> Any:
    async def admit(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        verifier: TokenVerifier | None = request.app.state.verifier
        if verifier is None:
            return ANONYMOUS_ADMIN
        if credentials is None:
            raise _unauthorized(f"this operation needs a bearer token with the {role} role")
        principal = verifier.verify(credentials.credentials)
        if not principal.may(role):
            held = ", ".join(sorted(principal.roles)) or "none"
            raise ApiProblem(
                403,
                "forbidden",
                f"this operation needs the {role} role; the token's roles: {held}",
            )
        return principal

    return Depends(admit)


_ADMITTERS = {role: _admitter(role) for role in Role}
