import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter
from prometheus_client import REGISTRY
from pydantic import BaseModel, Field
from sonata_kit import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    ServiceSettings,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    create_service_app,
)

ERRORS: dict[str, tuple[type[ServiceError], int, str]] = {
    "bad": (BadRequest, 400, "bad_request"),
    "unauth": (Unauthorized, 401, "unauthorized"),
    "forbidden": (Forbidden, 403, "forbidden"),
    "missing": (NotFound, 404, "not_found"),
    "conflict": (Conflict, 409, "conflict"),
    "unprocessable": (Unprocessable, 422, "unprocessable"),
    "slow-down": (TooManyRequests, 429, "too_many_requests"),
    "down": (ServiceUnavailable, 503, "service_unavailable"),
}

router = APIRouter(prefix="/v1")


class Item(BaseModel):
    name: str = Field(min_length=1)
    quantity: int = Field(ge=1)


@router.get("/fail/{kind}")
async def fail(kind: str) -> None:
    error, _, _ = ERRORS[kind]
    raise error(f"{kind} happened")


@router.post("/items/{item_id}", status_code=201)
async def create_item(item_id: int, item: Item) -> dict[str, int | str]:
    return {"id": item_id, "name": item.name}


@router.get("/conflict-with-code")
async def conflict_with_code() -> None:
    raise Conflict({"field": "email"}, code="email_taken")


@router.get("/bug")
async def bug() -> None:
    raise RuntimeError("a bug")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(
        ServiceSettings(environment="test"), service="kit-errors", title="t", routers=[router]
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit") as c:
        yield c


@pytest.mark.parametrize("kind", sorted(ERRORS))
async def test_service_errors_render_status_code_and_detail(
    client: httpx.AsyncClient, kind: str
) -> None:
    _, status, code = ERRORS[kind]
    response = await client.get(f"/v1/fail/{kind}")
    assert response.status_code == status
    assert response.json() == {"error": code, "detail": f"{kind} happened"}


async def test_unauthorized_asks_for_a_bearer_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/fail/unauth")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_custom_code_and_structured_detail(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/conflict-with-code")
    assert response.status_code == 409
    assert response.json() == {"error": "email_taken", "detail": {"field": "email"}}


async def test_invalid_body_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/items/3", json={"name": "", "quantity": 0})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    fields = {tuple(problem["loc"]) for problem in body["detail"]}
    assert fields == {("body", "name"), ("body", "quantity")}


async def test_malformed_json_and_bad_path_param_are_422(client: httpx.AsyncClient) -> None:
    broken = await client.post(
        "/v1/items/3", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.json()["error"] == "validation_error"
    bad_id = await client.post("/v1/items/three", json={"name": "a", "quantity": 1})
    assert bad_id.status_code == 422
    assert bad_id.json()["detail"][0]["loc"] == ["path", "item_id"]


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "detail": "no route for GET /v1/nothing-here"}
    wrong = await client.delete("/v1/items/3")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"


async def test_unexpected_exception_is_a_logged_500_in_the_same_shape(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="sonata.kit.errors"):
        response = await client.get("/v1/bug")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "a bug" not in response.text
    assert any("RuntimeError: a bug" in (r.exc_text or "") for r in caplog.records)


async def test_request_id_is_kept_when_sane_and_replaced_otherwise(
    client: httpx.AsyncClient,
) -> None:
    kept = await client.get("/healthz", headers={"X-Request-ID": "req-42.abc"})
    assert kept.headers["x-request-id"] == "req-42.abc"
    replaced = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith<script>"})
    assert replaced.headers["x-request-id"] != "bad id\twith<script>"
    assert len(replaced.headers["x-request-id"]) == 32
    fresh = await client.get("/healthz")
    assert len(fresh.headers["x-request-id"]) == 32


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    labels = {"service": "kit-errors", "method": "POST", "route": "/v1/items/{item_id}"}
    before = REGISTRY.get_sample_value("sonata_http_requests_total", {**labels, "status": "201"})
    for item_id in (1, 2, 3):
        assert (
            await client.post(f"/v1/items/{item_id}", json={"name": "a", "quantity": 1})
        ).status_code == 201
    after = REGISTRY.get_sample_value("sonata_http_requests_total", {**labels, "status": "201"})
    assert (after or 0) - (before or 0) == 3
    exposed = (await client.get("/metrics")).text
    assert 'route="/v1/items/{item_id}"' in exposed
    assert "sonata_http_request_duration_seconds_bucket" in exposed


async def test_readiness_is_503_until_started(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"] == "starting"
