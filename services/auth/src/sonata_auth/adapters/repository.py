"""Repositories over the Beanie documents, each bound to one transaction's session."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from sonata_auth.adapters.documents import (
    AuditDoc,
    OAuthAccountDoc,
    OAuthStateDoc,
    OneTimeSecretDoc,
    RefreshFamilyDoc,
    RefreshTokenDoc,
    SigningKeyDoc,
    UserDoc,
)
from sonata_auth.domain.errors import EmailTakenError
from sonata_auth.domain.model import (
    AuditEntry,
    OAuthAccount,
    OAuthState,
    OneTimeSecret,
    Purpose,
    RefreshFamily,
    RefreshToken,
    SigningKey,
    User,
)


def _fields(doc: Any, id_as: str | None = "id") -> dict[str, Any]:
    data: dict[str, Any] = doc.model_dump(exclude={"revision_id"})
    doc_id = data.pop("id", None)
    if id_as is not None:
        data[id_as] = doc_id
    return data


class UserRepository:
    def __init__(self, session: AsyncClientSession) -> None:
        self.s = session

    async def get(self, user_id: str) -> User | None:
        doc = await UserDoc.get(user_id, session=self.s)
        return User(**_fields(doc)) if doc else None

    async def get_by_email(self, email: str) -> User | None:
        doc = await UserDoc.find_one(UserDoc.email == email, session=self.s)
        return User(**_fields(doc)) if doc else None

    async def add(self, user: User) -> None:
        try:
            await UserDoc(**asdict(user)).insert(session=self.s)
        except DuplicateKeyError as exc:
            raise EmailTakenError() from exc

    async def save(self, user: User) -> None:
        await UserDoc(**asdict(user)).replace(session=self.s)

    async def delete(self, user_id: str) -> None:
        await UserDoc.find(UserDoc.id == user_id, session=self.s).delete(session=self.s)


class FamilyRepository:
    def __init__(self, session: AsyncClientSession) -> None:
        self.s = session

    async def get(self, family_id: str) -> RefreshFamily | None:
        doc = await RefreshFamilyDoc.get(family_id, session=self.s)
        return RefreshFamily(**_fields(doc)) if doc else None

    async def add(self, family: RefreshFamily) -> None:
        await RefreshFamilyDoc(**asdict(family)).insert(session=self.s)

    async def save(self, family: RefreshFamily) -> None:
        await RefreshFamilyDoc(**asdict(family)).replace(session=self.s)

    async def list_for_user(self, user_id: str) -> list[RefreshFamily]:
        docs = await RefreshFamilyDoc.find(
            RefreshFamilyDoc.user_id == user_id, session=self.s
        ).to_list()
        return [RefreshFamily(**_fields(d)) for d in docs]

    async def delete_for_user(self, user_id: str) -> None:
        await RefreshFamilyDoc.find(RefreshFamilyDoc.user_id == user_id, session=self.s).delete(
            session=self.s
        )


class RefreshTokenRepository:
    def __init__(self, session: AsyncClientSession) -> None:
        self.s = session

    async def get(self, token_hash: str) -> RefreshToken | None:
        doc = await RefreshTokenDoc.get(token_hash, session=self.s)
        return RefreshToken(**_fields(doc, "token_hash")) if doc else None

    async def add(self, token: RefreshToken) -> None:
        data = asdict(token)
        data["id"] = data.pop("token_hash")
        await RefreshTokenDoc(**data).insert(session=self.s)

    async def mark_used(self, token_hash: str, now: datetime) -> bool:
        result = await RefreshTokenDoc.get_pymongo_collection().update_one(
            {"_id": token_hash, "used_at": None}, {"$set": {"used_at": now}}, session=self.s
        )
        return result.modified_count == 1

    async def delete_for_user(self, user_id: str) -> None:
        await RefreshTokenDoc.find(RefreshTokenDoc.user_id == user_id, session=self.s).delete(
            session=self.s
        )


def _secret(doc: OneTimeSecretDoc) -> OneTimeSecret:
    return OneTimeSecret(**_fields(doc, None))


class OneTimeSecretRepository:
    def __init__(self, session: AsyncClientSession) -> None:
        self.s = session

    async def get(self, secret_hash: str, purpose: Purpose) -> OneTimeSecret | None:
        doc = await OneTimeSecretDoc.find_one(
            OneTimeSecretDoc.secret_hash == secret_hash,
            OneTimeSecretDoc.purpose == purpose,
            session=self.s,
        )
        return _secret(doc) if doc else None

    async def pending_for_user(self, user_id: str, purpose: Purpose) -> OneTimeSecret | None:
        docs = (
            await OneTimeSecretDoc.find(
                OneTimeSecretDoc.user_id == user_id,
                OneTimeSecretDoc.purpose == purpose,
                OneTimeSecretDoc.used_at == None,  # noqa: E711 - a MongoDB query, not a test
                session=self.s,
            )
            .sort("-created_at")
            .limit(1)
            .to_list()
        )
        return _secret(docs[0]) if docs else None

    async def add(self, secret: OneTimeSecret) -> None:
        await OneTimeSecretDoc(**asdict(secret)).insert(session=self.s)

    async def save(self, secret: OneTimeSecret) -> None:
        await OneTimeSecretDoc.get_pymongo_collection().update_one(
            {"secret_hash": secret.secret_hash, "purpose": str(secret.purpose)},
            {"$set": {"used_at": secret.used_at, "attempts": secret.attempts}},
            session=self.s,
        )

    async def consume_all(self, user_id: str, purpose: Purpose, now: datetime) -> None:
        await OneTimeSecretDoc.get_pymongo_collection().update_many(
            {"user_id": user_id, "purpose": str(purpose), "used_at": None},
            {"$set": {"used_at": now}},
            session=self.s,
        )

    async def delete_for_user(self, user_id: str) -> None:
        await OneTimeSecretDoc.find(OneTimeSecretDoc.user_id == user_id, session=self.s).delete(
            session=self.s
        )


class OAuthAccountRepository:
    def __init__(self, session: AsyncClientSession) -> None:
        self.s = session

    async def get(self, provider: str, subject: str) -> OAuthAccount | None:
        doc = await OAuthAccountDoc.find_one(
            OAuthAccountDoc.provider == provider,
            OAuthAccountDoc.subject == subject,
            session=self.s,
        )
        return OAuthAccount(**_fields(doc, None)) if doc else None

    async def add(self, account: OAuthAccount) -> None:
        await OAuthAccountDoc(**asdict(account)).insert(session=self.s)

    async def list_for_user(self, user_id: str) -> list[OAuthAccount]:
        docs = await OAuthAccountDoc.find(
            OAuthAccountDoc.user_id == user_id, session=self.s
        ).to_list()
        return [OAuthAccount(**_fields(d, None)) for d in docs]

    async def delete_for_user(self, user_id: str) -> None:
        await OAuthAccountDoc.find(OAuthAccountDoc.user_id == user_id, session=self.s).delete(
            session=self.s
        )


class OAuthStateRepository:
    def __init__(self, session: AsyncClientSession) -> None:
        self.s = session

    async def add(self, state: OAuthState) -> None:
        data = asdict(state)
        data["id"] = data.pop("state_hash")
        await OAuthStateDoc(**data).insert(session=self.s)

    async def pop(self, state_hash: str) -> OAuthState | None:
        raw = await OAuthStateDoc.get_pymongo_collection().find_one_and_delete(
            {"_id": state_hash}, session=self.s
        )
        if raw is None:
            return None
        return OAuthState(**_fields(OAuthStateDoc.model_validate(raw), "state_hash"))


class AuditRepository:
    def __init__(self, session: AsyncClientSession) -> None:
        self.s = session

    async def add(self, entry: AuditEntry) -> None:
        await AuditDoc(**asdict(entry)).insert(session=self.s)

    async def list_for_user(self, user_id: str, limit: int = 500) -> list[AuditEntry]:
        docs = (
            await AuditDoc.find(AuditDoc.user_id == user_id, session=self.s)
            .sort("-at")
            .limit(limit)
            .to_list()
        )
        return [AuditEntry(**_fields(d)) for d in reversed(docs)]

    async def anonymise(self, user_id: str, email: str) -> None:
        # Failed logins name the address typed, also before the account existed (no user_id).
        await AuditDoc.get_pymongo_collection().update_many(
            {"$or": [{"user_id": user_id}, {"detail.email": email}]},
            {"$set": {"ip": None}, "$unset": {"detail.email": ""}},
            session=self.s,
        )


class MongoSigningKeyStore:
    """Outside any use-case transaction: keys are read on every process's own schedule."""

    async def list(self) -> list[SigningKey]:
        docs = await SigningKeyDoc.find_all().to_list()
        return [SigningKey(**_fields(d, "kid")) for d in docs]

    async def add_and_retire_others(self, key: SigningKey, now: datetime) -> None:
        data = asdict(key)
        data["id"] = data.pop("kid")
        await SigningKeyDoc.get_pymongo_collection().update_many(
            {"retired_at": None}, {"$set": {"retired_at": now}}
        )
        await SigningKeyDoc(**data).insert()
