import json

import numpy as np
import pytest
from sonata_engine import (
    PERF_NOTE_DTYPE,
    SCORE_NOTE_DTYPE,
    AlignmentResult,
    Judgement,
    Measure,
    PedalEvent,
    Performance,
    Score,
    SessionOptions,
    build_report,
)

SPQ = 0.6  # the learner plays at 100 bpm
T0 = 1.0


def make_score(bars: int, rh: list[int], lh: int = 48) -> Score:
    """4/4 bars: right hand quarters cycling through ``rh``, left hand halves on beats 1 and 3."""
    rows = []
    for b in range(bars):
        for beat in range(4):
            rows.append((f"r{b}.{beat}", rh[(4 * b + beat) % len(rh)], 4 * b + beat, 1.0, b, 0))
        for beat in (0, 2):
            rows.append((f"l{b}.{beat}", lh, 4 * b + beat, 2.0, b, 1))
    notes = np.zeros(len(rows), dtype=SCORE_NOTE_DTYPE)
    for k, (sid, pitch, q, dur, b, hand) in enumerate(rows):
        beat = q - 4 * b + 1
        notes[k] = (
            sid,
            pitch,
            q,
            dur,
            q * 0.5,
            dur * 0.5,
            b + 1,
            b,
            beat,
            hand,
            hand + 1,
            1,
            False,
            64,
        )
    notes = notes[np.lexsort((notes["pitch"], notes["onset_q"]))]
    measures = [Measure(b, b + 1, 4.0 * b, 4.0 * b + 4, 4, 4) for b in range(bars)]
    return Score(notes=notes, measures=measures)


def perform(
    score: Score,
    spq: list[float] | None = None,
    shift: dict[str, float] | None = None,
    skip: tuple[str, ...] = (),
    pitch: dict[str, int] | None = None,
    held: float = 0.95,
) -> tuple[Performance, dict[str, str]]:
    """Play the score; ``spq`` gives seconds per quarter for each bar. Returns the performance
    and which perf id played which score note."""
    sn = score.notes
    per_bar = spq or [SPQ] * len(score.measures)
    bar_start = T0 + np.concatenate([[0.0], np.cumsum(np.array(per_bar) * 4.0)])
    rows = []
    for r in sn:
        sid = str(r["id"])
        if sid in skip:
            continue
        b = int(r["measure_index"])
        onset = bar_start[b] + (r["onset_q"] - 4 * b) * per_bar[b] + (shift or {}).get(sid, 0.0)
        length = r["duration_q"] * per_bar[b] * held
        rows.append((sid, (pitch or {}).get(sid, int(r["pitch"])), onset, onset + length, 70))
    rows.sort(key=lambda x: (x[2], x[1]))
    notes = np.zeros(len(rows), dtype=PERF_NOTE_DTYPE)
    played = {}
    for k, (sid, p, on, off, vel) in enumerate(rows):
        notes[k] = (f"n{k}", p, on, off, vel, 0)
        played[sid] = f"n{k}"
    return Performance(notes=notes), played


RH = [60, 62, 64, 65, 67, 65, 64, 62]


def two_bar_take() -> tuple[Score, Performance, AlignmentResult]:
    score = make_score(2, RH)
    perf, played = perform(score, shift={"r0.2": 0.1}, skip=("r1.1",), pitch={"r1.2": 66})
    extra = np.zeros(1, dtype=PERF_NOTE_DTYPE)
    extra[0] = ("x0", 70, T0 + 7.5 * SPQ, T0 + 7.8 * SPQ, 60, 0)
    perf.notes = np.sort(np.concatenate([perf.notes, extra]), order="onset_s")
    matches = [(s, p) for s, p in played.items() if s != "r1.2"]
    alignment = AlignmentResult(matches, [("r1.2", played["r1.2"])], ["x0"], ["r1.1"])
    return score, perf, alignment


def test_report_per_bar_numbers_on_a_hand_built_alignment() -> None:
    score, perf, alignment = two_bar_take()
    report = build_report(score, perf, alignment, SessionOptions())
    b1, b2 = report.bars
    assert (b1["expected"], b1["correct"], b1["missed"], b1["wrong_pitch"], b1["extra"]) == (
        6,
        6,
        0,
        0,
        0,
    )
    assert (b2["expected"], b2["correct"], b2["missed"], b2["wrong_pitch"], b2["extra"]) == (
        6,
        4,
        1,
        1,
        1,
    )
    assert b1["accuracy"] == 1.0
    assert b2["accuracy"] == pytest.approx(4 / 6)
    # Only the one late note deviates, by 100 ms, against the learner's own 100 bpm.
    assert b1["timing_ms"] == pytest.approx(100 / 6, abs=1e-6)
    assert b1["right_timing_ms"] == pytest.approx(25.0, abs=1e-6)
    assert b1["left_timing_ms"] == pytest.approx(0.0, abs=1e-6)
    assert b2["timing_ms"] == pytest.approx(0.0, abs=1e-6)
    assert b1["tempo_bpm"] == pytest.approx(100.0)
    assert b2["tempo_bpm"] == pytest.approx(100.0)
    assert (b1["right_expected"], b1["left_expected"], b2["right_correct"]) == (4, 2, 2)
    late = report.notes[report.notes["score_id"] == "r0.2"][0]
    assert late["timing"] == "late"
    assert late["timing_ms"] == pytest.approx(100.0)
    assert late["timing_beats"] == pytest.approx(0.1 / SPQ)
    assert report.summary["tempo_bpm"] == pytest.approx(100.0)
    # 10 correct of 12 expected plus one extra; rhythm: the 100 ms note gets 5/6 credit.
    assert report.subscores["notes"] == pytest.approx(round(100 * 10 / 13, 1))
    assert report.subscores["rhythm"] == pytest.approx(round(100 * (10 + 5 / 6) / 11, 1))
    texts = [f.text for f in report.findings]
    assert "missed 1 note in bar 2" in texts
    assert "played 1 wrong note in bar 2" in texts
    assert "played 1 extra note in bar 2" in texts
    wrong = next(f for f in report.findings if f.kind == "wrong_pitch")
    assert wrong.facts["examples"] == ["F#4 for E4"]


def test_report_reasons_say_what_each_note_was_matched_to() -> None:
    score, perf, alignment = two_bar_take()
    report = build_report(score, perf, alignment, SessionOptions())
    by_kind = {}
    for row, reason in zip(report.notes, report.reasons, strict=True):
        by_kind.setdefault(str(row["kind"]), reason)
    assert (
        "played F#4 where the score has E4 (r1.2, bar 2 beat 3, right hand)"
        in by_kind["wrong_pitch"]
    )
    assert by_kind["missed"] == "r1.1 F4 (bar 2 beat 2, right hand) was not played"
    assert "x0 Bb4" in by_kind["extra"]
    assert "near bar 2" in by_kind["extra"]
    late = report.reasons[int(np.flatnonzero(report.notes["score_id"] == "r0.2")[0])]
    assert late.endswith("100 ms late against your own tempo")


def test_report_respects_bar_range_and_hand() -> None:
    score, perf, alignment = two_bar_take()
    only_bar2 = build_report(score, perf, alignment, SessionOptions(first_bar=2, last_bar=2))
    assert only_bar2.bars["number"].tolist() == [2]
    assert only_bar2.summary["expected"] == 6
    assert only_bar2.summary["extra_outside_options"] == 6  # bar 1 was played, not asked for
    assert only_bar2.subscores["notes"] == pytest.approx(round(100 * 4 / 7, 1))
    right = build_report(score, perf, alignment, SessionOptions(hands="right"))
    assert right.summary["expected"] == 8
    assert right.bars["left_expected"].tolist() == [0, 0]


def test_report_finds_a_hand_late_on_one_beat() -> None:
    score = make_score(8, RH)
    late = {f"l{b}.0": 0.06 for b in range(8)}
    perf, played = perform(score, shift=late)
    report = build_report(score, perf, AlignmentResult(list(played.items()), [], [], []))
    finding = next(f for f in report.findings if f.kind == "hand_late")
    assert finding.text == "left hand late on beat 1 by 60 ms on average"
    assert finding.facts["notes"] == 8
    assert not any(f.kind == "hand_early" for f in report.findings)


def test_report_merges_both_hands_late_on_the_same_beat() -> None:
    score = make_score(8, RH)
    # Every downbeat chord arrives 80 ms late against the beats around it.
    late = {sid: 0.08 for sid in score.notes["id"].tolist() if sid.endswith(".0")}
    perf, played = perform(score, shift=late)
    report = build_report(score, perf, AlignmentResult(list(played.items()), [], [], []))
    beat1 = [f for f in report.findings if f.kind == "hand_late"]
    assert [f.text for f in beat1] == ["both hands late on beat 1 by 80 ms on average"]
    assert beat1[0].facts["notes"] == 16


def test_report_finds_bars_that_sped_up_and_scores_tempo_lower() -> None:
    score = make_score(8, RH)
    steady, played = perform(score)
    tempos = [SPQ] * 4 + [60 / 130] * 2 + [SPQ] * 2
    hurried, played_h = perform(score, spq=tempos)
    calm = build_report(score, steady, AlignmentResult(list(played.items()), [], [], []))
    rushed = build_report(score, hurried, AlignmentResult(list(played_h.items()), [], [], []))
    assert rushed.bars["tempo_bpm"][4:6] == pytest.approx([130.0, 130.0])
    finding = next(f for f in rushed.findings if f.kind == "tempo")
    assert finding.text == "bars 5-6 sped up to 130 bpm (your usual 100 bpm)"
    assert (finding.first_bar, finding.last_bar) == (5, 6)
    assert calm.subscores["tempo"] == 100.0
    assert rushed.subscores["tempo"] is not None
    assert rushed.subscores["tempo"] < 60
    assert not any(f.kind == "tempo" for f in calm.findings)


def test_report_pedal_and_articulation_per_bar() -> None:
    score = make_score(4, RH)
    perf, played = perform(score, held=0.3)
    perf.pedal = [PedalEvent(T0, 127), PedalEvent(T0 + 2 * SPQ, 0), PedalEvent(T0 + 9 * SPQ, 100)]
    report = build_report(score, perf, AlignmentResult(list(played.items()), [], [], []))
    assert report.bars["pedal_down_s"][0] == pytest.approx(2 * SPQ)
    assert report.bars["pedal_changes"].tolist() == [1, 0, 1, 0]
    assert report.bars["pedal_down_s"][2] == pytest.approx(3 * SPQ)
    # Keys come up after 30 % of the written length; from bar 3 beat 2 the pedal holds them.
    assert report.bars["articulation"].tolist() == ["staccato", "staccato", "legato", "legato"]
    assert report.bars["duration_ratio"][:2] == pytest.approx([0.3, 0.3])
    held = report.notes[report.notes["score_id"] == "r3.0"][0]
    end = T0 + 15.3 * SPQ  # the take ends at the last key release (r3.3's)
    assert held["duration_ratio"] == pytest.approx((end - (T0 + 12 * SPQ)) / SPQ)
    # Gaps between written-legato neighbours: four right-hand quarters lose 70 % of 0.6 s,
    # two left-hand halves 70 % of 1.2 s.
    gap_ms = (4 * 0.7 * SPQ + 2 * 0.7 * 2 * SPQ) / 6 * 1000
    assert report.bars["legato_overlap_ms"][0] == pytest.approx(-gap_ms)
    assert any(f.text.startswith("notes in bars 1-2 sounded only 30%") for f in report.findings)
    legato = build_report(score, perform(score, held=1.0)[0], report.alignment)
    assert legato.bars["articulation"].tolist() == ["legato"] * 4
    assert legato.subscores["articulation"] == 100.0
    assert report.subscores["articulation"] < 20


def test_report_wait_mode_does_not_judge_timing() -> None:
    score, perf, alignment = two_bar_take()
    report = build_report(score, perf, alignment, SessionOptions(mode="wait"))
    assert set(report.notes["timing"].tolist()) == {"not_judged"}
    assert report.subscores["rhythm"] is None
    assert report.subscores["tempo"] is None
    assert not any(f.kind in ("rushed", "dragged", "hand_late") for f in report.findings)


def test_report_marks_live_decisions_the_final_alignment_revised() -> None:
    score, perf, alignment = two_bar_take()
    pid = dict(alignment.matches)["r0.0"]
    live = [Judgement("extra", pid, None, 60, None, T0)]
    report = build_report(score, perf, alignment, SessionOptions(), live)
    row = int(np.flatnonzero(report.notes["perf_id"] == pid)[0])
    assert report.notes["live"][row] == "extra"
    assert report.reasons[row].endswith("the live session first said extra")
    assert report.summary["live_revised"] == 1


def test_report_names_the_score_note_live_tied_a_revised_note_to() -> None:
    score, perf, alignment = two_bar_take()
    pid = dict(alignment.matches)["r0.1"]
    live = [Judgement("correct", pid, "r0.3", 62, 62, T0)]
    report = build_report(score, perf, alignment, SessionOptions(), live)
    row = int(np.flatnonzero(report.notes["perf_id"] == pid)[0])
    assert report.notes["live_score_id"][row] == "r0.3"
    assert report.reasons[row].endswith("the live session first said correct (r0.3)")
    unchanged = [Judgement("correct", pid, "r0.1", 62, 62, T0)]
    assert (
        build_report(score, perf, alignment, SessionOptions(), unchanged).summary["live_revised"]
        == 0
    )


def test_report_rejects_bad_options_and_duplicated_notes() -> None:
    from sonata_engine import SessionStateError

    score, perf, alignment = two_bar_take()
    with pytest.raises(SessionStateError, match="runs backwards"):
        build_report(score, perf, alignment, SessionOptions(first_bar=3, last_bar=1))
    with pytest.raises(SessionStateError, match="hands"):
        build_report(score, perf, alignment, SessionOptions(hands="middle"))  # type: ignore[arg-type]
    # A score note may be played in several passes; a performed note is one key press.
    played = alignment.matches[0][1]
    twice = AlignmentResult(
        alignment.matches, alignment.wrong_pitch, [*alignment.extra, played], alignment.missed
    )
    with pytest.raises(SessionStateError, match=f"performed note '{played}' more than once"):
        build_report(score, perf, twice, SessionOptions())


def test_report_on_an_empty_take_lists_every_note_missed() -> None:
    score = make_score(2, RH)
    perf = Performance(np.zeros(0, dtype=PERF_NOTE_DTYPE))
    report = build_report(score, perf, AlignmentResult([], [], [], []), SessionOptions())
    assert report.summary["missed"] == 12
    assert report.subscores["notes"] == 0.0
    assert report.findings[0].text == "missed 12 notes in bars 1-2"
    json.dumps(report.to_dict(), allow_nan=False)


def test_report_to_dict_is_strict_json_with_the_formula() -> None:
    score, perf, alignment = two_bar_take()
    d = build_report(score, perf, alignment, SessionOptions()).to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["formula"].startswith("overall = sum(w_k * s_k)")
    assert len(back["notes"]) == 13
    assert len(back["bars"]) == 2
    assert back["notes"][0]["reason"]
    assert [round(x["bpm"]) for x in back["tempo_curve"]] == [100, 100]
    assert back["dynamics_profile"][0] == {"bar": 1, "velocity": 70.0, "marked": 64.0}
    assert back["pedal"][1] == {"bar": 2, "down_s": 0.0, "changes": 0}
    assert back["articulation"][0]["label"] == "legato"
    weights, subs = back["weights"], back["subscores"]
    have = {k: v for k, v in subs.items() if v is not None}
    expected = sum(weights[k] * v for k, v in have.items()) / sum(weights[k] for k in have)
    assert back["overall"] == pytest.approx(round(expected, 1))


def test_report_rejects_an_alignment_naming_unknown_notes() -> None:
    from sonata_engine import SessionStateError

    score, perf, _ = two_bar_take()
    with pytest.raises(SessionStateError, match="'nope'"):
        build_report(score, perf, AlignmentResult([("nope", "n0")], [], [], []))
