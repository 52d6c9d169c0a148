"""Every operation of db's OpenAPI, fuzzed by schemathesis against the running process with a
valid token: whatever the input, the answer is never a 5xx."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from sonata_testing import ServiceProcess

sys.path.insert(0, str(Path(__file__).parent))

from db_api_support import Users

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def db_schema(library: ServiceProcess) -> Any:
    schema = schemathesis.openapi.from_url(f"{library.base_url}/openapi.json")
    schema.config.base_url = library.base_url
    return schema


@pytest.fixture(scope="session")
def fuzz_headers(users: Users) -> dict[str, str]:
    # A teacher who is also a parent and an admin reaches every route past its role check.
    return users.new("student", "teacher", "parent", "admin")[1]


def test_no_input_makes_db_answer_5xx(db_schema: Any, fuzz_headers: dict[str, str]) -> None:
    failures: list[str] = []
    seen: dict[int, int] = {}
    operations = 0
    for result in db_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            response = case.call(headers=fuzz_headers, timeout=30)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:300]}")

        call()
    assert operations >= 25
    assert failures == []
    # The token was accepted and the fuzzer reached both the handlers and their refusals.
    assert sum(n for status, n in seen.items() if status < 300) > operations, seen
    assert sum(n for status, n in seen.items() if 400 <= status < 500) > 0, seen
