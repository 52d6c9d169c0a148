"""Coach feedback built only from a report's measured facts. Pure and deterministic: the
same report always gives the same feedback, with or without a language model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

SUBSCORE_NAMES = {
    "notes": "right notes",
    "rhythm": "rhythm",
    "tempo": "steady tempo",
    "dynamics": "dynamics",
    "articulation": "articulation",
}
TIPS = {
    "missed": "Play bars {bars} hands separately and slowly until no note drops out.",
    "wrong_pitch": "Say the note names of bars {bars} aloud while playing them slowly.",
    "extra": "In bars {bars}, lift each finger cleanly so neighbouring keys stay silent.",
    "rushed": "Count out loud with a metronome in bars {bars}: you hurry there.",
    "dragged": "Keep the pulse moving in bars {bars}: you hold back there.",
    "tempo": "Pick one tempo for bars {bars} and keep it with a metronome.",
    "hand_late": "Play bars {bars} hands together very slowly, landing both hands at once.",
    "hand_early": "Play bars {bars} hands together very slowly, landing both hands at once.",
    "slow": "Once the notes are secure, raise the metronome by 4 bpm per clean run.",
    "articulation": "Listen to how long each note of bars {bars} sounds against the score.",
}
NOTE_KINDS = {"missed", "wrong_pitch", "extra"}


class Improvement(BaseModel):
    text: str
    first_bar: int
    last_bar: int


class Drill(BaseModel):
    first_bar: int
    last_bar: int
    hands: Literal["both", "right", "left"]
    tempo_percent: int = Field(ge=10, le=200)
    target: str  # what counts as done, in words
    target_accuracy: float = Field(ge=0, le=1)
    repetitions: int = Field(ge=1, le=20)


class Feedback(BaseModel):
    strengths: list[str]
    improve: list[Improvement]
    tips: list[str]
    encouragement: str
    drill: Drill


def _bars(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def deterministic_feedback(report: dict[str, Any]) -> Feedback:
    subscores: dict[str, float | None] = report.get("subscores", {})
    findings: list[dict[str, Any]] = report.get("findings", [])
    bars: list[dict[str, Any]] = report.get("bars", [])
    summary: dict[str, Any] = report.get("summary", {})

    strengths = [
        f"{SUBSCORE_NAMES.get(name, name).capitalize()}: {value:.0f}/100"
        for name, value in sorted(subscores.items(), key=lambda kv: -(kv[1] or 0))
        if value is not None and value >= 80
    ]
    clean = [b["number"] for b in bars if b.get("expected") and b.get("accuracy") == 1.0]
    if clean:
        strengths.append(f"{len(clean)} of {len(bars)} bars without a wrong or missed note")
    if not strengths:
        best = max(
            ((n, v) for n, v in subscores.items() if v is not None),
            key=lambda kv: kv[1],
            default=None,
        )
        if best is not None:
            strengths.append(f"Best so far: {SUBSCORE_NAMES.get(best[0], best[0])}, {best[1]:.0f}")

    improve = [
        Improvement(text=f["text"], first_bar=f["first_bar"], last_bar=f["last_bar"])
        for f in findings[:3]
    ]
    tips: list[str] = []
    for f in findings[:3]:
        tip = TIPS.get(f["kind"], "").format(bars=_bars(f["first_bar"], f["last_bar"]))
        if tip and tip not in tips:
            tips.append(tip)

    overall = report.get("overall")
    accuracy = summary.get("accuracy")
    if overall is not None and overall >= 90:
        encouragement = f"An excellent take: {overall:.0f} overall. Polish the details below."
    elif overall is not None and overall >= 70:
        encouragement = f"A solid take at {overall:.0f}: the piece is coming together."
    else:
        encouragement = "Every slow, careful run builds the piece: keep at the bars below."
    if isinstance(accuracy, float):
        encouragement += f" You played {accuracy:.0%} of the notes right."
    return Feedback(
        strengths=strengths,
        improve=improve,
        tips=tips,
        encouragement=encouragement,
        drill=_drill(findings, bars, report.get("options", {})),
    )


def _drill(
    findings: list[dict[str, Any]], bars: list[dict[str, Any]], options: dict[str, Any]
) -> Drill:
    numbers = [b["number"] for b in bars] or [1]
    if findings:
        top = findings[0]
        first, last = top["first_bar"], top["last_bar"]
        hands_played = top.get("facts", {}).get("hands") or []
        note_problem = top["kind"] in NOTE_KINDS
    else:
        first, last, hands_played, note_problem = numbers[0], numbers[-1], [], False
    # a loop longer than four bars is a run-through, not a drill
    last = min(last, first + 3)
    hands: Literal["both", "right", "left"] = "both"
    if hands_played == [0]:
        hands = "right"
    elif hands_played == [1]:
        hands = "left"
    elif options.get("hands") in ("right", "left"):
        hands = options["hands"]
    base = float(options.get("tempo_percent") or 100.0)
    tempo = round(base * (0.7 if note_problem else 0.85))
    target_accuracy = 0.95 if note_problem else 0.9
    return Drill(
        first_bar=first,
        last_bar=last,
        hands=hands,
        tempo_percent=max(10, min(200, tempo)),
        target=f"{target_accuracy:.0%} of notes right in bars {_bars(first, last)}, "
        "three times in a row",
        target_accuracy=target_accuracy,
        repetitions=3,
    )
