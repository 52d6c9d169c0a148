from pydantic import Field, SecretStr
from sonata_kit import ServiceSettings


class ScoringSettings(ServiceSettings):
    mongodb_db: str = "scoring"
    # Limits of a user payment has never told us about, or whose paid plan has lapsed.
    free_scored_sessions_per_day: int = 3
    free_coach: bool = False
    free_full_reports: bool = False
    free_teacher_seats: int = 0

    # The live WebSocket (/ws/v1/sessions).
    # Browser pages allowed to open it; a request without Origin is a device, not a browser.
    ws_allowed_origins: tuple[str, ...] = ("http://127.0.0.1:8080", "http://localhost:8080")
    ws_auth_timeout_s: float = 5.0
    ws_idle_timeout_s: float = 120.0
    ws_max_message_bytes: int = 65536
    ws_rate_per_s: float = 100.0  # client messages per second, sustained
    ws_rate_burst: int = 200
    ws_max_events_per_message: int = 512
    # bytes of server messages waiting for a slow reader before it is cut
    ws_send_buffer_bytes: int = 1_048_576
    ws_position_interval_s: float = 0.5
    ws_checkpoint_interval_s: float = 0.5  # acks wait for it; judgements never do
    # A session nobody has touched for this long is finished with what was played.
    session_abandon_after_s: float = 600.0
    session_sweep_interval_s: float = 30.0
    # The garbage collector's thresholds (gc.set_threshold): generation 0 every this many
    # allocations, then every so many collections of the one below.
    gc_threshold: tuple[int, int, int] = (100_000, 50, 1000)

    # The coach.
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4.1-mini"
    openai_timeout_s: float = 20.0
    # USD per million tokens, for the usage ledger.
    openai_input_cost_per_mtok: float = 0.40
    openai_output_cost_per_mtok: float = 1.60
    coach_daily_budget_usd: float = 0.50
    # turns (a question or an answer each) a chat conversation keeps for follow-ups
    coach_history_turns: int = Field(default=12, ge=0, le=100)
