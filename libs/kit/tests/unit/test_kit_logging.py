import json
import logging

import pytest
from sonata_kit import configure_logging
from sonata_messaging import correlation_scope


def test_log_lines_are_json_with_service_and_correlation_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        configure_logging("library", "INFO")
        configure_logging("library", "INFO")  # a second call must not double every line
        log = logging.getLogger("sonata.test")
        with correlation_scope("req-77"):
            log.info("piece %s published", "fur-elise")
        log.debug("below the level")
        log.warning("outside any request")
    finally:
        root.handlers[:] = before
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["message"] == "piece fur-elise published"
    assert (first["service"], first["correlation_id"], first["level"]) == (
        "library",
        "req-77",
        "INFO",
    )
    assert first["logger"] == "sonata.test"
    assert "time" in first
    assert second["correlation_id"] is None
    assert second["level"] == "WARNING"
