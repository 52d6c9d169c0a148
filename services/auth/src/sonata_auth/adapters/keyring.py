"""Ed25519 signing keys: issue and verify access tokens, publish the JWKS, rotate.

Private keys are stored encrypted by the secret box. A retired key stays published, and keeps
verifying, until every token it signed has expired.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sonata_auth.domain.errors import InvalidTokenError
from sonata_auth.domain.model import ACCESS_TOKEN_TTL, AccessClaims, SigningKey, User
from sonata_auth.service_layer.ports import SecretBox, SigningKeyStore

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"
PUBLISH_GRACE = ACCESS_TOKEN_TTL + timedelta(minutes=1)
# Another instance may rotate: re-read the keys at least this often (seconds).
RELOAD_INTERVAL_S = 30.0
REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "exp", "jti", "sid", "roles")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(public: Ed25519PublicKey) -> dict[str, str]:
    x = _b64(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    # RFC 7638 thumbprint: the kid names the key itself, so two instances cannot disagree.
    thumb = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    kid = _b64(hashlib.sha256(thumb.encode()).digest())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": ALGORITHM, "use": "sig"}


class KeyRing:
    def __init__(self, store: SigningKeyStore, box: SecretBox, issuer: str, audience: str) -> None:
        self.store = store
        self.box = box
        self.issuer = issuer
        self.audience = audience
        self._keys: list[SigningKey] = []
        self._loaded_at = float("-inf")
        self._private: dict[str, Ed25519PrivateKey] = {}

    async def _load(self, force: bool = False) -> list[SigningKey]:
        if force or time.monotonic() - self._loaded_at > RELOAD_INTERVAL_S:
            self._keys = await self.store.list()
            self._loaded_at = time.monotonic()
        return self._keys

    async def ensure_key(self, now: datetime) -> None:
        if not any(k.retired_at is None for k in await self._load(force=True)):
            await self.rotate(now)

    async def rotate(self, now: datetime) -> str:
        private = Ed25519PrivateKey.generate()
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        jwk = public_jwk(private.public_key())
        key = SigningKey(
            kid=jwk["kid"],
            public_jwk=jwk,
            private_encrypted=self.box.encrypt(raw),
            created_at=now,
        )
        await self.store.add_and_retire_others(key, now)
        self._private[key.kid] = private
        await self._load(force=True)
        return key.kid

    async def _active(self, now: datetime) -> SigningKey:
        active = [k for k in await self._load() if k.retired_at is None]
        if not active:
            await self.ensure_key(now)
            active = [k for k in await self._load(force=True) if k.retired_at is None]
        return max(active, key=lambda k: k.created_at)

    def _private_key(self, key: SigningKey) -> Ed25519PrivateKey:
        if key.kid not in self._private:
            raw = self.box.decrypt(key.private_encrypted)
            self._private[key.kid] = Ed25519PrivateKey.from_private_bytes(raw)
        return self._private[key.kid]

    async def issue(self, user: User, sid: str, now: datetime) -> str:
        key = await self._active(now)
        iat = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user.id,
            "roles": [str(r) for r in user.roles],
            "iat": iat,
            "exp": iat + int(ACCESS_TOKEN_TTL.total_seconds()),
            "jti": uuid.uuid4().hex,
            "sid": sid,
        }
        return jwt.encode(
            claims,
            self._private_key(key),
            algorithm=ALGORITHM,
            headers={"kid": key.kid, "typ": TOKEN_TYPE},
        )

    async def jwks(self, now: datetime) -> dict[str, Any]:
        keys = await self._load()
        return {"keys": [k.public_jwk for k in keys if k.is_published(now, PUBLISH_GRACE)]}

    async def _public_key(self, kid: str, now: datetime) -> Ed25519PublicKey:
        for force in (False, True):
            for k in await self._load(force=force):
                if k.kid == kid and k.is_published(now, PUBLISH_GRACE):
                    raw = base64.urlsafe_b64decode(k.public_jwk["x"] + "==")
                    return Ed25519PublicKey.from_public_bytes(raw)
        raise InvalidTokenError("the token was signed by an unknown key (kid)")

    async def verify(self, token: str, now: datetime) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(f"the token is malformed: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidTokenError(f"algorithm {header.get('alg')!r} is not accepted")
        if header.get("typ") != TOKEN_TYPE:
            raise InvalidTokenError(f"token type {header.get('typ')!r} is not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("the token names no signing key (kid)")
        public = await self._public_key(kid, now)
        try:
            # Time is checked below against the injected clock, not the machine's.
            claims = jwt.decode(
                token,
                public,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidTokenError(f"the token lacks the {exc.claim!r} claim") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidTokenError("the token is meant for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidTokenError("the token comes from another issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidTokenError("the token's signature does not verify") from exc
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(f"the token is not valid: {exc}") from exc
        return _claims(claims, now)


def _claims(claims: dict[str, Any], now: datetime) -> AccessClaims:
    exp, iat = claims["exp"], claims["iat"]
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise InvalidTokenError("exp and iat must be integers")
    ts = int(now.timestamp())
    if exp <= ts:
        raise InvalidTokenError("the token has expired")
    # One minute of clock skew between instances is tolerated, no more.
    if iat > ts + 60:
        raise InvalidTokenError("the token was issued in the future")
    roles, sub, sid, jti = claims["roles"], claims["sub"], claims["sid"], claims["jti"]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidTokenError("roles must be a list of strings")
    if not all(isinstance(v, str) and v for v in (sub, sid, jti)):
        raise InvalidTokenError("sub, sid and jti must be non-empty strings")
    return AccessClaims(sub=sub, roles=tuple(roles), sid=sid, jti=jti, iat=iat, exp=exp)
