"""Who gets the coach's feedback on a performance: a plan with the coach, or a credit spent on
that very performance; and what a refusal tells the learner to do."""

import pytest
from sonata_scoring.domain.entitlements import Limits, coach_refusal, coach_unlocked_by

FREE = Limits(scored_sessions_per_day=3, coach=False, full_reports=False, teacher_seats=0)
PREMIUM = Limits(scored_sessions_per_day=None, coach=True, full_reports=True, teacher_seats=0)


def test_a_one_credit_spend_on_coach_reference_unlocks_that_performance() -> None:
    assert coach_unlocked_by("spend", -1, "coach:perf-42") == "perf-42"
    assert coach_unlocked_by("spend", -3, "coach:perf-42") == "perf-42"


@pytest.mark.parametrize(
    ("reason", "delta", "reference"),
    [
        ("spend", -1, "lesson:perf-42"),  # credits spent on something else
        ("spend", -1, "perf-42"),
        ("spend", -1, "coach:"),  # no performance named
        ("spend", -1, None),  # a producer from before the reference existed
        ("spend", 0, "coach:perf-42"),
        ("purchase", 10, "coach:perf-42"),
        ("refund", -1, "coach:perf-42"),
        ("grant", 1, "coach:perf-42"),
    ],
)
def test_nothing_else_unlocks_the_coach(reason: str, delta: int, reference: str | None) -> None:
    assert coach_unlocked_by(reason, delta, reference) is None


def test_the_coach_plan_or_an_unlock_lets_the_feedback_through() -> None:
    assert coach_refusal(PREMIUM, "premium_monthly", unlocked=False, performance_id="p") is None
    assert coach_refusal(FREE, "free", unlocked=True, performance_id="p") is None


def test_a_refusal_names_the_plan_and_the_exact_spend_that_unlocks_this_performance() -> None:
    reason = coach_refusal(FREE, "free", unlocked=False, performance_id="perf-42")
    assert reason is not None
    assert "the free plan has no coach" in reason
    assert "a paid plan with the coach unlocks it" in reason
    assert "POST /api/payment/v1/credits/spend" in reason
    assert '{"credits": 1, "reference": "coach:perf-42"}' in reason
