"""The deterministic coach: every statement traces back to a fact of the report."""

from typing import Any

from sonata_scoring.domain.coach import deterministic_feedback


def report(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "overall": 74.0,
        "subscores": {"notes": 92.0, "rhythm": 61.0, "tempo": 85.0, "dynamics": None},
        "summary": {"accuracy": 0.92},
        "options": {"hands": "both", "tempo_percent": 100.0},
        "bars": [
            {"number": n, "expected": 6, "accuracy": 1.0 if n != 12 else 0.5} for n in range(1, 17)
        ],
        "findings": [
            {"text": "played 2 wrong notes in bars 12-13", "kind": "wrong_pitch",
             "first_bar": 12, "last_bar": 13, "impact": 2.0, "facts": {"notes": 2}},
            {"text": "left hand late on beat 1 by 60 ms on average", "kind": "hand_late",
             "first_bar": 2, "last_bar": 16, "impact": 1.5, "facts": {"hands": [1]}},
        ],
    }  # fmt: skip
    return base | over


def test_feedback_names_the_bars_of_the_findings_and_drills_the_worst() -> None:
    fb = deterministic_feedback(report())
    assert [(i.first_bar, i.last_bar) for i in fb.improve] == [(12, 13), (2, 16)]
    assert fb.improve[0].text == "played 2 wrong notes in bars 12-13"
    assert "12-13" in fb.tips[0]
    assert (fb.drill.first_bar, fb.drill.last_bar, fb.drill.hands) == (12, 13, "both")
    assert fb.drill.tempo_percent == 70  # wrong notes: slow down to fix them
    assert "Right notes: 92/100" in fb.strengths
    assert not any("Rhythm" in s for s in fb.strengths)  # 61 is not a strength
    assert "92%" in fb.encouragement


def test_a_one_hand_timing_problem_drills_that_hand_over_at_most_four_bars() -> None:
    findings = report()["findings"][1:]
    fb = deterministic_feedback(report(findings=findings, options={"tempo_percent": 80.0}))
    assert (fb.drill.first_bar, fb.drill.last_bar, fb.drill.hands) == (2, 5, "left")
    assert fb.drill.tempo_percent == 68


def test_same_facts_same_feedback_and_a_clean_take_still_gets_a_drill() -> None:
    assert deterministic_feedback(report()) == deterministic_feedback(report())
    clean = deterministic_feedback(report(findings=[], overall=96.0))
    assert clean.improve == []
    assert clean.encouragement.startswith("An excellent take")
    assert (clean.drill.first_bar, clean.drill.last_bar) == (1, 4)
