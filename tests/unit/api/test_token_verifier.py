"""Bearer tokens: HS256 with a shared secret or RS256/ES256 with a public key; expiry,
issuer and audience checked; roles read from the configured claim."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from flowbus.api.auth import AuthMisconfigured, Principal, Role, TokenVerifier
from flowbus.api.problems import ApiProblem
from flowbus.config import ApiAuthSettings

SECRET = "a-shared-secret-of-thirty-two-bytes!"


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "ada", "roles": ["operator"], "exp": int(time.time()) + 60, **extra}


def public_pem(private: Any) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(ApiProblem) as caught:
        verifier.verify(token)
    assert caught.value.status == 401
    return caught.value.detail


def test_an_hs256_token_gives_its_subject_and_roles() -> None:
    verifier = TokenVerifier(ApiAuthSettings(secret=SECRET))

    principal = verifier.verify(jwt.encode(claims(), SECRET, algorithm="HS256"))

    assert principal == Principal(subject="ada", roles=frozenset({Role.OPERATOR}))
    assert principal.may(Role.VIEWER)
    assert principal.may(Role.OPERATOR)
    assert not principal.may(Role.ADMIN)


@pytest.mark.parametrize(
    ("algorithm", "private"),
    [
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ],
)
def test_rs256_and_es256_tokens_verify_with_the_public_key(algorithm: str, private: Any) -> None:
    verifier = TokenVerifier(ApiAuthSettings(algorithm=algorithm, public_key=public_pem(private)))
    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )

    good = verifier.verify(jwt.encode(claims(roles=["admin"]), private, algorithm=algorithm))

    assert good.roles == frozenset({Role.ADMIN})
    assert "Signature" in refused(verifier, jwt.encode(claims(), other, algorithm=algorithm))
    assert "alg" in refused(verifier, jwt.encode(claims(), SECRET, algorithm="HS256")).lower()


def test_the_public_key_can_come_from_a_file(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "key.pem").write_text(public_pem(private))
    verifier = TokenVerifier(
        ApiAuthSettings(algorithm="ES256", public_key_file=tmp_path / "key.pem")
    )

    assert verifier.verify(jwt.encode(claims(), private, algorithm="ES256")).subject == "ada"


def test_issuer_audience_and_expiry_are_required_and_checked() -> None:
    settings = ApiAuthSettings(secret=SECRET, issuer="https://idp/", audience="flowbus")
    verifier = TokenVerifier(settings)

    def sign(**extra: Any) -> str:
        return jwt.encode({**claims(), **extra}, SECRET, algorithm="HS256")

    assert verifier.verify(sign(iss="https://idp/", aud="flowbus")).subject == "ada"
    assert "issuer" in refused(verifier, sign(iss="https://elsewhere/", aud="flowbus"))
    assert "Audience" in refused(verifier, sign(iss="https://idp/", aud="other"))
    assert '"aud"' in refused(verifier, sign(iss="https://idp/"))
    assert "expired" in refused(verifier, sign(iss="https://idp/", aud="flowbus", exp=1))
    no_exp = {"sub": "ada", "roles": ["viewer"], "iss": "https://idp/", "aud": "flowbus"}
    assert '"exp"' in refused(verifier, jwt.encode(no_exp, SECRET, algorithm="HS256"))


def test_leeway_forgives_a_little_clock_skew() -> None:
    verifier = TokenVerifier(ApiAuthSettings(secret=SECRET, leeway=30))

    token = jwt.encode(claims(exp=int(time.time()) - 5), SECRET, algorithm="HS256")

    assert verifier.verify(token).subject == "ada"


@pytest.mark.parametrize(
    ("raw", "roles"),
    [
        (["viewer", "admin"], {Role.VIEWER, Role.ADMIN}),
        ("operator viewer", {Role.OPERATOR, Role.VIEWER}),
        (["superuser", 3], set()),
        (None, set()),
    ],
)
def test_roles_come_from_a_list_or_a_space_separated_claim(raw: Any, roles: set[Role]) -> None:
    verifier = TokenVerifier(ApiAuthSettings(secret=SECRET, roles_claim="groups"))

    token = jwt.encode({**claims(), "groups": raw}, SECRET, algorithm="HS256")

    assert verifier.verify(token).roles == roles


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (ApiAuthSettings(), "api.auth.secret is not set"),
        (ApiAuthSettings(secret="too-short"), "HS256 needs 32 or more"),
        (ApiAuthSettings(algorithm="RS256"), "RS256 needs api.auth.public_key"),
        (ApiAuthSettings(algorithm="ES256", public_key="not a key"), "not usable"),
        (
            ApiAuthSettings(algorithm="ES256", public_key_file=Path("/nonexistent/key.pem")),
            "public_key_file",
        ),
    ],
)
def test_settings_that_cannot_verify_any_token_are_refused_at_start(
    settings: ApiAuthSettings, message: str
) -> None:
    with pytest.raises(AuthMisconfigured, match=message):
        TokenVerifier(settings)
