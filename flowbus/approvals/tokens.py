"""Decision tokens: JWTs that prove who decided, and bind the decision itself.

A decision event carries a token signed by the approvers' identity provider (HS256 with
a shared secret, or RS256/ES256 verified with configured public keys or a JWKS file).
flowbus checks the signature, `exp`, `iss` and `aud`, and that the claims `approval_id`
and `decision` are the event's, so a token seen on the topic cannot be reused for another
approval or the other answer. `sub` is the decider; `groups` (optional) their groups.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import orjson

from flowbus.config import ApprovalSettings

_ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class TokenRefused(ValueError):
    """The token does not prove the decision; the message is the refusal reason."""


@dataclass(frozen=True, slots=True)
class Decider:
    user: str
    groups: tuple[str, ...]


class DecisionVerifier:
    """Verifies decision tokens with the configured keys."""

    def __init__(self, settings: ApprovalSettings) -> None:
        self._settings = settings
        self._secret = settings.shared_secret()
        self._keys: list[bytes] = [Path(p).read_bytes() for p in settings.public_keys]
        self._jwks: list[Any] = []
        if settings.jwks_file:
            jwks = orjson.loads(Path(settings.jwks_file).read_bytes())
            self._jwks = [jwt.PyJWK(key) for key in jwks.get("keys", [])]

    @property
    def configured(self) -> bool:
        return bool(self._secret or self._settings.public_keys or self._jwks)

    def verify(self, token: Any, approval_id: str, decision: str) -> Decider:
        if not isinstance(token, str) or not token:
            raise TokenRefused("no token: a decision must carry a signed token")
        if not self.configured:
            raise TokenRefused("no decision keys are configured; every decision is refused")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRefused("malformed token") from None
        claims = self._decode(token, str(header.get("alg", "")), header.get("kid"))
        if claims.get("approval_id") != approval_id or claims.get("decision") != decision:
            raise TokenRefused("the token was not issued for this approval and decision")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenRefused("the token names no subject (sub)")
        groups = claims.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise TokenRefused("the token's groups claim must be a list of names")
        return Decider(user=subject, groups=tuple(groups))

    def _decode(self, token: str, algorithm: str, kid: Any) -> dict[str, Any]:
        options = {"require": ["exp", "iss", "aud", "sub"]}
        common: dict[str, Any] = {
            "audience": self._settings.audience,
            "issuer": self._settings.issuer,
            "leeway": self._settings.leeway,
            "options": options,
        }
        candidates: list[tuple[Any, list[str]]] = []
        if algorithm == "HS256" and self._secret:
            candidates.append((self._secret, ["HS256"]))
        elif algorithm in _ASYMMETRIC:
            for jwk in self._jwks:
                if kid is None or jwk.key_id == kid:
                    candidates.append((jwk.key, [algorithm]))
            candidates.extend((key, [algorithm]) for key in self._keys)
        if not candidates:
            raise TokenRefused(f"tokens signed with {algorithm or 'no algorithm'} are not accepted")
        last: str = "bad signature"
        for key, algorithms in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(token, key, algorithms=algorithms, **common)
                return claims
            except jwt.ExpiredSignatureError:
                raise TokenRefused("the token has expired") from None
            except jwt.InvalidAudienceError:
                raise TokenRefused("the token is for another audience") from None
            except jwt.InvalidIssuerError:
                raise TokenRefused("the token comes from another issuer") from None
            except jwt.MissingRequiredClaimError as exc:
                raise TokenRefused(f"the token lacks the {exc.claim} claim") from None
            except jwt.InvalidSignatureError:
                last = "bad signature"
            except (jwt.PyJWTError, ValueError, TypeError):
                last = "invalid token"
        raise TokenRefused(last)


def sign_decision(
    settings: ApprovalSettings,
    *,
    approval_id: str,
    decision: str,
    user: str,
    groups: list[str] | None = None,
    ttl: float = 300.0,
) -> str:
    """A decision token signed with the configured signing key (for operators and tests)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": user,
        "iat": now,
        "exp": now + int(ttl),
        "approval_id": approval_id,
        "decision": decision,
    }
    if groups:
        claims["groups"] = groups
    algorithm = settings.signing_algorithm
    if algorithm == "HS256":
        key: Any = settings.shared_secret()
        if not key:
            raise TokenRefused("no HS256 secret is configured to sign with")
    else:
        if not settings.signing_key_file:
            raise TokenRefused(f"no private key file is configured to sign {algorithm} with")
        key = Path(settings.signing_key_file).read_bytes()
    return jwt.encode(claims, key, algorithm=algorithm)
