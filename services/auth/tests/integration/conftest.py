"""auth's real adapters on a fresh database of the session's SecantusDB server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sonata_auth import bootstrap
from sonata_auth.adapters.documents import DOCUMENTS
from sonata_auth.service_layer.deps import Deps
from sonata_auth.settings import AuthSettings
from sonata_messaging import Outbox


@dataclass
class AuthDb:
    client: AsyncMongoClient[Any]
    db: AsyncDatabase[Any]
    outbox: Outbox
    deps: Deps
    settings: AuthSettings


@pytest.fixture(scope="session")
async def auth_db(mongo_url: str) -> AsyncIterator[AuthDb]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    name = f"auth_it_{uuid.uuid4().hex[:8]}"
    db = client[name]
    await init_beanie(database=db, document_models=DOCUMENTS)
    outbox = Outbox(db, "auth")
    await outbox.ensure_indexes()
    settings = AuthSettings(
        environment="test",
        mongodb_url=mongo_url,
        mongodb_db=name,
        key_encryption_secret="integration-test-secret-0123456789",
        login_account_limit=3,
        login_window_s=60,
    )
    deps = await bootstrap.build(settings, client, outbox)
    yield AuthDb(client, db, outbox, deps, settings)
    await client.drop_database(name)
    await client.close()
