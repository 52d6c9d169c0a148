"""ai-scoring as a real process: its entitlements projection fed by payment's events and
served to the token holder, its piece copies, and user deletion."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient
from sonata_contracts.auth import UserDeleted
from sonata_contracts.db import PiecePublished, PieceWithdrawn
from sonata_contracts.payment import EntitlementsChanged, Limits
from sonata_testing import (
    JwksServer,
    ServiceProcess,
    SigningKey,
    TokenFactory,
    eventually,
    publish_events,
)

pytestmark = pytest.mark.integration

PREMIUM = Limits(scored_sessions_per_day=None, coach=True, full_reports=True, teacher_seats=0)
BASIC = Limits(scored_sessions_per_day=10, coach=False, full_reports=True, teacher_seats=0)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="module")
def database() -> str:
    return f"scoring_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def scoring(
    mongo_url: str, amqp_url: str, key: SigningKey, database: str, tmp_path_factory: Any
) -> Iterator[ServiceProcess]:
    with JwksServer([key.jwk]) as jwks:
        env = {
            "ENVIRONMENT": "test",
            "MONGODB_URL": mongo_url,
            "MONGODB_DB": database,
            "AMQP_URL": amqp_url,
            "AUTH_JWKS_URL": jwks.url,
            "FREE_SCORED_SESSIONS_PER_DAY": "2",
        }
        log_dir: Path = tmp_path_factory.mktemp("scoring")
        service = ServiceProcess(
            "ai-scoring", "sonata_scoring.main:create_app", env, log_dir=log_dir
        )
        service.start()
        try:
            yield service
        finally:
            service.stop()


def bearer(tokens: TokenFactory, user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.sign(tokens.claims(sub=user_id))}"}


async def consumed(service: ServiceProcess, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{service.base_url}/metrics")).text
    wanted = {"service": "ai-scoring", "event": name, "outcome": "applied"}
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sonata_events_consumed_total" and sample.labels == wanted
    )


async def test_entitlements_me_needs_a_valid_token(
    scoring: ServiceProcess, key: SigningKey
) -> None:
    async with httpx.AsyncClient(base_url=scoring.base_url) as http:
        missing = await http.get("/v1/entitlements/me")
        forged = await http.get(
            "/v1/entitlements/me", headers=bearer(TokenFactory(SigningKey(kid=key.kid)), "u")
        )
        fresh = await http.get("/v1/entitlements/me", headers=bearer(TokenFactory(key), "new"))
    assert (missing.status_code, missing.json()["error"]) == (401, "missing_token")
    assert (forged.status_code, forged.json()["error"]) == (401, "invalid_token")
    assert fresh.status_code == 200
    assert fresh.json() == {
        "user_id": "new",
        "plan": "free",
        "limits": {
            "scored_sessions_per_day": 2,
            "coach": False,
            "full_reports": False,
            "teacher_seats": 0,
        },
        "valid_until": None,
        "source": "default",
    }


async def test_projection_keeps_the_newest_entitlement_whatever_the_arrival_order(
    scoring: ServiceProcess, key: SigningKey, amqp_url: str
) -> None:
    user = f"learner-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    newer = EntitlementsChanged(
        user_id=user,
        plan="premium_monthly",
        limits=PREMIUM,
        valid_until=now + timedelta(days=30),
        version=2,
        as_of=now,
    )
    older = EntitlementsChanged(
        user_id=user,
        plan="basic",
        limits=BASIC,
        valid_until=None,
        version=1,
        as_of=now - timedelta(minutes=5),
    )
    lapsed = EntitlementsChanged(
        user_id=f"{user}-lapsed",
        plan="premium_monthly",
        limits=PREMIUM,
        valid_until=now - timedelta(days=1),
        version=1,
        as_of=now - timedelta(days=31),
    )
    applied_before = await consumed(scoring, EntitlementsChanged.NAME)
    await publish_events(amqp_url, [newer, older, lapsed])

    async def all_three_handled() -> bool:
        return await consumed(scoring, EntitlementsChanged.NAME) - applied_before == 3

    await eventually(all_three_handled, "the three entitlement events")
    tokens = TokenFactory(key)
    async with httpx.AsyncClient(base_url=scoring.base_url) as http:
        mine = (await http.get("/v1/entitlements/me", headers=bearer(tokens, user))).json()
        gone = await http.get("/v1/entitlements/me", headers=bearer(tokens, f"{user}-lapsed"))
    assert mine["plan"] == "premium_monthly"
    assert mine["limits"]["scored_sessions_per_day"] is None
    assert mine["source"] == "payment"
    assert gone.json()["plan"] == "free"
    assert gone.json()["limits"]["scored_sessions_per_day"] == 2


async def test_piece_copies_and_user_deletion(
    scoring: ServiceProcess, key: SigningKey, amqp_url: str, mongo_url: str, database: str
) -> None:
    owner = f"teacher-{uuid.uuid4().hex[:6]}"
    score = {"notes": [{"pitch": 60, "onset_beats": 0.0, "duration_beats": 1.0}]}

    def piece(version: int, title: str) -> PiecePublished:
        return PiecePublished(
            piece_id=f"piece-{owner}",
            version=version,
            title=title,
            composer="Czerny",
            level=2,
            owner_id=owner,
            visibility="private",
            score=score,
        )

    public = PiecePublished(
        piece_id=f"public-{owner}",
        version=1,
        title="C major scale",
        composer="trad.",
        level=1,
        owner_id=None,
        visibility="public",
        score=score,
    )
    entitlement = EntitlementsChanged(
        user_id=owner,
        plan="premium_yearly",
        limits=PREMIUM,
        valid_until=None,
        version=1,
        as_of=datetime.now(UTC),
    )
    await publish_events(
        amqp_url, [piece(2, "Etude (revised)"), piece(1, "Etude"), public, entitlement]
    )
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    pieces = client[database].pieces
    try:

        async def copies_kept() -> bool:
            return await pieces.count_documents(
                {"piece_id": {"$in": [public.piece_id, f"piece-{owner}"]}}
            ) == 2 and (
                await client[database].entitlements.count_documents({"user_id": owner}) == 1
            )

        await eventually(copies_kept, "the piece copies and the entitlement")
        private = await pieces.find_one({"piece_id": f"piece-{owner}"})
        assert private is not None
        assert (private["version"], private["title"]) == (2, "Etude (revised)")

        await publish_events(
            amqp_url,
            [
                PieceWithdrawn(piece_id=public.piece_id, version=1, owner_id=None, reason="dup"),
                UserDeleted(user_id=owner),
            ],
        )

        async def owner_forgotten() -> bool:
            return await pieces.count_documents({"owner_id": owner}) == 0

        await eventually(owner_forgotten, "the owner's data to be erased")
        assert await client[database].entitlements.count_documents({"user_id": owner}) == 0
        withdrawn = await pieces.find_one({"piece_id": public.piece_id})
        assert withdrawn is not None
        assert withdrawn["withdrawn"] is True
        async with httpx.AsyncClient(base_url=scoring.base_url) as http:
            me = await http.get("/v1/entitlements/me", headers=bearer(TokenFactory(key), owner))
        assert me.json()["source"] == "default"
    finally:
        await client.close()
