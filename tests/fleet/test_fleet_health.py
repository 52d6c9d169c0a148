"""The six services and the nginx gateway, started exactly as `make run` starts them.

The processes come from the same plan and process manager (honcho over the Procfile it
writes); only the ports (free ones), SecantusDB and the RabbitMQ vhost are the test's own.
Mail goes to the run's own SMTP sink, which keeps each message under var/mail.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import sys
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import websockets
from sonata_contracts.auth import UserRegistered
from sonata_contracts.db import AchievementUnlocked
from sonata_testing import publish_events

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "local"))
sys.path.insert(0, str(Path(__file__).parent))

from local_fleet import local_fleet  # noqa: E402
from sonata_local.plan import SERVICES, Config, Service, service  # noqa: E402

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    with local_fleet(
        tmp_path_factory.mktemp("fleet-var"), "sonata-fleet", require_gateway=True
    ) as cfg:
        yield cfg


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def test_every_service_is_ready_directly_and_through_the_gateway(
    fleet: Config, client: httpx.Client
) -> None:
    for s in SERVICES:
        direct = client.get(f"{fleet.direct_url(s)}/readyz")
        via = client.get(f"{fleet.gateway_url(s)}/readyz")
        assert direct.status_code == 200, (s.name, direct.text)
        assert via.status_code == 200, (s.name, via.text)
        assert via.json() == direct.json()


def test_each_route_reaches_its_own_service(fleet: Config, client: httpx.Client) -> None:
    titles = {}
    for s in SERVICES:
        doc = client.get(f"{fleet.gateway_url(s)}/openapi.json")
        assert doc.status_code == 200, (s.name, doc.text[:300])
        assert doc.json() == client.get(f"{fleet.direct_url(s)}/openapi.json").json()
        titles[s.name] = doc.json()["info"]["title"]
    assert len(set(titles.values())) == len(SERVICES), titles


def _openapi_link(html: str) -> str:
    found = re.search(r"url: '([^']+openapi\.json)'", html)
    assert found, html[:500]
    return found.group(1)


@pytest.mark.parametrize("s", SERVICES, ids=lambda s: s.name)
def test_docs_page_loads_its_openapi_document_at_both_addresses(
    fleet: Config, client: httpx.Client, s: Service
) -> None:
    for origin, page in (
        (fleet.gateway_base, f"{fleet.gateway_url(s)}/docs"),
        (fleet.direct_url(s), f"{fleet.direct_url(s)}/docs"),
    ):
        html = client.get(page)
        assert html.status_code == 200, (page, html.text[:300])
        assert "swagger-ui" in html.text
        # the browser resolves the link against the page's origin
        doc = client.get(origin + _openapi_link(html.text))
        assert doc.status_code == 200, (page, doc.text[:300])
        assert doc.json()["paths"]


def test_request_id_is_echoed_through_the_gateway(fleet: Config, client: httpx.Client) -> None:
    for s in SERVICES:
        rid = f"fleet-{s.name}-{uuid.uuid4().hex}"
        r = client.get(f"{fleet.gateway_url(s)}/healthz", headers={"X-Request-ID": rid})
        assert r.status_code == 200
        assert r.headers["x-request-id"] == rid
    minted = client.get(f"{fleet.gateway_url(SERVICES[0])}/healthz").headers["x-request-id"]
    again = client.get(f"{fleet.gateway_url(SERVICES[0])}/healthz").headers["x-request-id"]
    assert minted
    assert again
    assert minted != again


def test_gateway_errors_keep_the_fleet_error_body(fleet: Config, client: httpx.Client) -> None:
    unrouted = client.get(f"{fleet.gateway_base}/nowhere")
    assert unrouted.status_code == 404
    assert unrouted.json()["error"] == "not_found"
    for s in SERVICES:
        # the prefix is stripped: the service itself answers for a path it does not have
        missing = client.get(f"{fleet.gateway_url(s)}/v1/no-such-route-{uuid.uuid4().hex}")
        assert missing.status_code == 404, (s.name, missing.text)
        assert missing.json()["error"] == "not_found"


def test_prometheus_metrics_are_served_through_the_gateway(
    fleet: Config, client: httpx.Client
) -> None:
    for s in SERVICES:
        r = client.get(f"{fleet.gateway_url(s)}/metrics")
        assert r.status_code == 200, s.name
        assert "sonata_http_requests_total" in r.text


async def _handshake(url: str) -> str:
    """What a WebSocket client gets at `url`: the refusal status, or how the socket closed."""
    try:
        async with websockets.connect(url, open_timeout=10, close_timeout=5) as ws:
            try:
                await asyncio.wait_for(ws.recv(), timeout=5)
            except websockets.ConnectionClosed as closed:
                return f"closed {closed.rcvd.code if closed.rcvd else None}"
            except TimeoutError:
                return "open"
            return "open"
    except websockets.InvalidStatus as refused:
        return f"refused {refused.response.status_code}"


async def test_websocket_upgrade_through_the_gateway_reaches_ai_scoring(fleet: Config) -> None:
    scoring = next(s for s in SERVICES if s.name == "ai-scoring")
    path = "/ws/"
    direct = await _handshake(f"ws://{fleet.host}:{fleet.ports[scoring.name]}{path}")
    via = await _handshake(f"ws://{fleet.host}:{fleet.gateway_port}{path}")
    # Without the Upgrade and Connection headers ai-scoring would see a plain GET (404), and
    # an unreachable upstream is nginx's 502: the same answer as direct means it got through.
    assert via == direct
    assert via not in ("refused 404", "refused 502", "refused 400")


def _kept_mail(folder: Path) -> list[EmailMessage]:
    found = []
    for path in sorted(folder.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        found.append(msg)
    return found


def test_signup_mail_lands_in_var_mail_and_its_link_verifies(
    fleet: Config, client: httpx.Client
) -> None:
    auth = fleet.gateway_url(SERVICES[0])
    address = f"fleet-{uuid.uuid4().hex[:8]}@example.org"
    password = "correct horse battery staple"
    r = client.post(
        f"{auth}/v1/signup",
        json={"email": address, "password": password, "display_name": "Clara"},
    )
    assert r.status_code == 202, r.text
    # the verification email, as notifications sent it to the sink `make run` starts
    deadline = time.monotonic() + 60
    while True:
        found = _kept_mail(fleet.mail_dir)
        mine = [m for m in found if str(m["To"]) == address and "Confirm" in str(m["Subject"])]
        if mine:
            break
        assert time.monotonic() < deadline, [str(m["Subject"]) for m in found]
        time.sleep(0.2)
    text = mine[0].get_body(preferencelist=("plain",))
    assert text is not None
    link = re.search(r"https?://\S+verify-email\?token=\S+", text.get_content())
    assert link is not None, text.get_content()
    token = httpx.URL(link.group(0)).params["token"]
    r = client.post(f"{auth}/v1/email/verify", json={"token": token})
    assert r.status_code == 200, r.text


async def test_the_unsubscribe_link_of_a_kept_mail_works_through_the_gateway(
    fleet: Config,
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    address = f"{user}@example.org"
    registered = UserRegistered(
        user_id=user, email=address, display_name="Clara", roles=["student"], locale="en",
        timezone="Europe/Vienna",
    )  # fmt: skip
    unlocked = AchievementUnlocked(user_id=user, achievement="first", title="First piece")
    await publish_events(fleet.amqp_url, [registered, unlocked])
    deadline = time.monotonic() + 60
    while not (
        mine := [
            m
            for m in _kept_mail(fleet.mail_dir)
            if str(m["To"]) == address and "First piece" in str(m["Subject"])
        ]
    ):
        assert time.monotonic() < deadline, "no achievement mail in var/mail"
        await asyncio.sleep(0.2)
    link = str(mine[0]["List-Unsubscribe"]).strip("<> ")
    assert link.startswith(f"{fleet.gateway_url(service('notifications'))}/v1/unsubscribe/"), link
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(link, data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200, r.text


def test_web_push_is_on_with_the_key_pair_kept_under_var(
    fleet: Config, client: httpx.Client
) -> None:
    r = client.get(f"{fleet.gateway_url(service('notifications'))}/v1/push/public-key")
    assert r.status_code == 200, r.text
    assert fleet.vapid_keys is not None
    assert r.json() == {"public_key": fleet.vapid_keys[1]}


def test_a_client_cannot_choose_its_address_through_the_gateway(
    fleet: Config, client: httpx.Client
) -> None:
    # Last in the module: it spends this machine's login allowance (30 tries per 5 minutes
    # per address, auth's default; the tests above used some) on unknown accounts.
    auth = fleet.gateway_url(SERVICES[0])
    answers: list[int] = []
    while 429 not in answers and len(answers) <= 30:
        r = client.post(
            f"{auth}/v1/login",
            json={"email": f"spoof-{uuid.uuid4().hex[:8]}@example.org", "password": "x" * 12},
            # a different made-up client address every time: the gateway must not pass it on
            headers={"X-Forwarded-For": f"198.51.100.{len(answers) + 1}"},
        )
        answers.append(r.status_code)
    assert answers[-1] == 429, f"{len(answers)} tries from one address, none refused"
    assert set(answers[:-1]) <= {401}, answers
