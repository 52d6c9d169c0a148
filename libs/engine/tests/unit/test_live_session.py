"""LiveSession on small constructed scores: what a learner at the keyboard would see."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sonata_engine import LiveSession
from sonata_engine.errors import InvalidEventError, SessionStateError
from sonata_engine.types import SCORE_NOTE_DTYPE, Judgement, Measure, Score, SessionOptions

SPQ = 0.5  # 120 bpm, the printed tempo of every score here


def make_score(
    rows: list[tuple[float, int] | tuple[float, int, int] | tuple[float, int, int, bool]],
) -> Score:
    """Score from (onset in quarters, pitch[, hand[, grace]]) in 4/4 at 120 bpm."""
    notes = np.zeros(len(rows), dtype=SCORE_NOTE_DTYPE)
    for i, row in enumerate(rows):
        q, pitch = row[0], row[1]
        hand = row[2] if len(row) > 2 else 0
        grace = row[3] if len(row) > 3 else False
        notes[i] = (
            f"n{i}",
            pitch,
            q,
            0.0 if grace else 1.0,
            q * SPQ,
            0.0 if grace else SPQ,
            int(q // 4) + 1,
            int(q // 4),
            1 + q % 4,
            hand,
            hand + 1,
            1,
            grace,
            64,
        )
    notes = notes[np.lexsort((notes["pitch"], notes["onset_q"]))]
    bars = int(notes["onset_q"].max() // 4) + 1
    measures = [Measure(b, b + 1, 4.0 * b, 4.0 * b + 4, 4, 4) for b in range(bars)]
    return Score(notes=notes, measures=measures)


# A melody that never repeats a four-note pattern: jumps can be told apart.
MELODY = [
    60,
    62,
    64,
    65,
    67,
    69,
    71,
    72,
    74,
    72,
    69,
    65,
    64,
    60,
    62,
    67,
    71,
    74,
    77,
    76,
    72,
    67,
    64,
    62,
    65,
    69,
    72,
    76,
    79,
    77,
    74,
    71,
]


def melody_score() -> Score:
    return make_score([(float(i), p) for i, p in enumerate(MELODY)])


def play(session: LiveSession, notes: list[tuple[float, int]]) -> list[list[Judgement]]:
    return [session.note_on(t, p, 80) for t, p in notes]


def ids_of(score: Score) -> dict[tuple[float, int], str]:
    return {(float(r["onset_q"]), int(r["pitch"])): str(r["id"]) for r in score.notes}


def test_clean_playing_is_all_correct_with_position_and_tempo() -> None:
    score = melody_score()
    s = LiveSession(score)
    out = play(s, [(i * SPQ, p) for i, p in enumerate(MELODY)])
    firsts = [o[0] for o in out]
    assert [j.kind for j in firsts] == ["correct"] * len(MELODY)
    assert [j.score_id for j in firsts] == [
        ids_of(score)[(float(i), p)] for i, p in enumerate(MELODY)
    ]
    assert s.position is not None
    assert s.position.measure == 8
    assert s.position.beat == 4
    assert s.tempo_bpm == pytest.approx(120, rel=0.02)
    assert "matched C5 at bar 2 beat 4" in firsts[7].reason


def test_wrong_pitch_names_the_meant_note_and_keeps_place() -> None:
    s = LiveSession(melody_score())
    notes = [(i * SPQ, p) for i, p in enumerate(MELODY[:8])]
    notes[4] = (4 * SPQ, 68)  # G#4 where G4 (67) is written
    out = play(s, notes)
    wrong = out[4][0]
    assert wrong.kind == "wrong_pitch"
    assert wrong.expected_pitch == 67
    assert wrong.pitch == 68
    assert "G4" in wrong.reason
    assert "G#4" in wrong.reason
    assert all(o[0].kind == "correct" for k, o in enumerate(out) if k != 4)


def test_extra_note_is_extra_and_the_next_note_still_matches() -> None:
    s = LiveSession(melody_score())
    play(s, [(0.0, 60), (0.5, 62)])
    extra = s.note_on(0.6, 90, 80)
    assert extra[0].kind == "extra"
    assert extra[0].score_id is None
    assert s.note_on(1.0, 64, 80)[0].kind == "correct"


def test_missed_note_reported_once_and_only_when_certain() -> None:
    score = melody_score()
    s = LiveSession(score)
    skipped = ids_of(score)[(2.0, 64)]
    seen: list[Judgement] = []
    seen += s.note_on(0.0, 60, 80) + s.note_on(0.5, 62, 80)
    seen += s.note_on(1.5, 65, 80)  # E4 at 1.0 s never played
    assert not [j for j in seen if j.kind == "missed"], "one note later is not certain yet"
    for i in range(4, 10):
        seen += s.note_on(i * SPQ, MELODY[i], 80)
    missed = [j for j in seen if j.kind == "missed"]
    assert [j.score_id for j in missed] == [skipped]
    assert missed[0].expected_pitch == 64
    assert "missed E4" in missed[0].reason
    seen += s.advance(30.0)
    assert [j.score_id for j in seen if j.kind == "missed"] == [skipped]


def test_advance_without_playing_does_not_invent_missed_notes() -> None:
    s = LiveSession(melody_score())
    s.note_on(0.0, 60, 80)
    assert s.advance(60.0) == []


def test_chord_notes_count_in_any_order() -> None:
    score = make_score([(0, 60), (0, 64), (0, 67), (1, 65), (1, 69), (1, 72), (2, 60)])
    s = LiveSession(score)
    out = play(s, [(0.0, 67), (0.01, 60), (0.02, 64), (0.5, 72), (0.51, 65), (0.53, 69), (1.0, 60)])
    ids = ids_of(score)
    assert [o[0].kind for o in out] == ["correct"] * 7
    assert out[0][0].score_id == ids[(0.0, 67)]
    assert out[6][0].score_id == ids[(2.0, 60)]


CHORDS = [(0, 60), (0, 64), (0, 67), (1, 65), (1, 69), (1, 72), (2, 60), (3, 62), (4, 64), (5, 65)]
CHORDS_LATER = [(1.0, 60), (1.5, 62), (2.0, 64), (2.5, 65)]


def test_a_stray_key_while_a_chord_is_played_is_extra_when_the_chord_comes_whole() -> None:
    score = make_score(CHORDS)
    s = LiveSession(score)
    # D#4 brushed between C4 and the chord's E4, which still comes 20 ms later
    out = play(s, [(0.0, 60), (0.01, 63), (0.03, 64), (0.04, 67)])
    out += [s.note_on(0.5, p, 80) for p in (65, 69, 72)] + play(s, CHORDS_LATER)
    said = [j for o in out for j in o]
    assert out[1][0].kind == "extra"
    assert out[1][0].score_id is None
    assert "unless its E4 does not come" in out[1][0].reason
    ids = ids_of(score)
    assert out[2][0].kind == "correct"
    assert out[2][0].score_id == ids[(0.0, 64)]
    assert [j for j in said if j.kind == "missed"] == []


def test_a_chord_played_with_a_wrong_key_reports_the_written_note_missed_once_it_is_over() -> None:
    score = make_score(CHORDS)
    s = LiveSession(score)
    out = play(s, [(0.0, 60), (0.01, 63), (0.04, 67)])  # D#4 instead of E4
    assert out[1][0].kind == "extra"
    out += [s.note_on(0.5, p, 80) for p in (65, 69, 72)]
    assert not [j for o in out for j in o if j.kind == "missed"], "not certain yet"
    out += play(s, CHORDS_LATER)
    missed = [j for o in out for j in o if j.kind == "missed"]
    assert [j.score_id for j in missed] == [ids_of(score)[(0.0, 64)]]
    assert "missed E4" in missed[0].reason
    assert f"played with {out[1][0].reason.split()[1]} instead" in missed[0].reason
    report = s.finish()
    assert report.alignment.wrong_pitch == [(ids_of(score)[(0.0, 64)], "p1")]


def test_grace_note_matches_itself_and_does_not_break_the_beat() -> None:
    score = make_score([(0, 60), (1, 62), (2, 65, 0, True), (2, 64), (3, 67)])
    s = LiveSession(score)
    out = play(s, [(0.0, 60), (0.5, 62), (0.93, 65), (1.0, 64), (1.5, 67)])
    ids = ids_of(score)
    assert [o[0].kind for o in out] == ["correct"] * 5
    assert out[2][0].score_id == ids[(2.0, 65)]
    assert out[3][0].score_id == ids[(2.0, 64)]
    assert out[2][0].timing == "not_judged"


def notes_until_back_on_place(after: list[Judgement], expected: list[str]) -> int:
    """How many notes after a jump were judged somewhere else than where they were played."""
    right = [j.kind == "correct" and j.score_id == e for j, e in zip(after, expected, strict=True)]
    return next(k for k in range(len(right)) if all(right[k:]))


def test_restart_of_a_bar_is_followed_within_three_notes() -> None:
    score = melody_score()
    ids = ids_of(score)
    s = LiveSession(score)
    t = 0.0
    for i in range(13):  # bars 1-3 and into bar 4
        s.note_on(t, MELODY[i], 80)
        t += SPQ
    t += 1.0
    after = [s.note_on(t + k * SPQ, MELODY[8 + k], 80)[0] for k in range(8)]  # bar 3 again
    expected = [ids[(float(8 + k), MELODY[8 + k])] for k in range(8)]
    assert notes_until_back_on_place(after, expected) <= 3, [j.reason for j in after]
    assert "after a jump" in after[notes_until_back_on_place(after, expected)].reason


@pytest.mark.parametrize(("stop", "resume"), [(22, 5), (6, 20)], ids=["back", "ahead"])
def test_jump_back_or_ahead_is_followed_within_three_notes(stop: int, resume: int) -> None:
    score = melody_score()
    ids = ids_of(score)
    s = LiveSession(score)
    t = 0.0
    for i in range(stop):
        s.note_on(t, MELODY[i], 80)
        t += SPQ
    t += 2.0
    after = [s.note_on(t + k * SPQ, MELODY[resume + k], 80)[0] for k in range(8)]
    expected = [ids[(float(resume + k), MELODY[resume + k])] for k in range(8)]
    assert notes_until_back_on_place(after, expected) <= 3, [j.reason for j in after]


# -- after a break: restarting the bar, going back, or carrying on after a slip --------

# Two voices: the melody above a bass note on every beat, so bars have chords to tell apart.
BASS = [48, 43, 45, 41, 48, 43, 45, 41]


def chord_score() -> tuple[list[list[int]], dict[tuple[float, int], str], LiveSession]:
    rows: list[tuple[float, int] | tuple[float, int, int]] = []
    chords: list[list[int]] = []
    for i, p in enumerate(MELODY):
        bass = BASS[(i // 4) % len(BASS)] - (i % 4)
        rows += [(float(i), p, 0), (float(i), bass, 1)]
        chords.append([bass, p])
    score = make_score(rows)
    return chords, ids_of(score), LiveSession(score)


def play_beats(
    s: LiveSession, chords: list[list[int]], beats: range, t: float
) -> tuple[list[Judgement], float]:
    out: list[Judgement] = []
    for b in beats:
        for k, p in enumerate(chords[b]):
            out.extend(j for j in s.note_on(t + 0.01 * k, p, 80) if j.kind != "missed")
        t += SPQ
    return out, t


def wrong_before_right(said: list[Judgement], expected: list[str]) -> int:
    right = [j.kind == "correct" and j.score_id == e for j, e in zip(said, expected, strict=True)]
    return next(k for k in range(len(right)) if all(right[k:]))


def expected_ids(
    chords: list[list[int]], ids: dict[tuple[float, int], str], beats: range
) -> list[str]:
    return [ids[(float(b), p)] for b in beats for p in chords[b]]


def test_restarting_the_bar_after_a_pause_is_followed_from_the_second_note() -> None:
    chords, ids, s = chord_score()
    _, t = play_beats(s, chords, range(0, 14), 0.0)  # into bar 4
    said, _ = play_beats(s, chords, range(12, 20), t + 0.8)  # bar 4 again, and on
    expected = expected_ids(chords, ids, range(12, 20))
    back = wrong_before_right(said, expected)
    assert back <= 1, [j.reason for j in said]
    assert "after a jump" in said[back].reason


def test_going_back_two_bars_after_a_pause_is_followed_within_three_notes() -> None:
    chords, ids, s = chord_score()
    _, t = play_beats(s, chords, range(0, 24), 0.0)  # bars 1-6
    said, _ = play_beats(s, chords, range(8, 16), t + 1.0)  # bar 3 again
    expected = expected_ids(chords, ids, range(8, 16))
    assert wrong_before_right(said, expected) <= 3, [j.reason for j in said]


def test_a_slip_after_a_pause_does_not_move_the_place() -> None:
    chords, ids, s = chord_score()
    _, t = play_beats(s, chords, range(0, 10), 0.0)
    t += 0.8
    # a stray key that opens bar 2 (the right hand's first note there), then playing on
    slip = s.note_on(t, chords[4][1], 80)
    said, _ = play_beats(s, chords, range(10, 16), t + 0.2)
    assert slip[0].kind != "correct" or slip[0].score_id != ids[(4.0, chords[4][1])]
    expected = expected_ids(chords, ids, range(10, 16))
    assert wrong_before_right(said, expected) == 0, [j.reason for j in said]


def test_skipping_bars_ahead_gives_no_missed_notice_per_note_but_the_report_counts_them() -> None:
    chords, ids, s = chord_score()
    _, t = play_beats(s, chords, range(0, 10), 0.0)
    t += 1.0
    heard: list[Judgement] = []
    for b in range(20, 28):  # bars 6-7: the learner skipped the rest of bar 3 and bars 4-5
        for k, p in enumerate(chords[b]):
            heard.extend(s.note_on(t + 0.01 * k, p, 80))
        t += SPQ
    played = [j for j in heard if j.kind != "missed"]
    assert wrong_before_right(played, expected_ids(chords, ids, range(20, 28))) <= 3
    skipped = set(expected_ids(chords, ids, range(10, 20)))
    assert not [j.score_id for j in heard if j.kind == "missed" and j.score_id in skipped]
    report = s.finish()
    missed = set(report.notes["score_id"][report.notes["kind"] == "missed"].tolist())
    assert skipped <= missed


def test_half_speed_and_a_long_pause_keep_place() -> None:
    score = melody_score()
    s = LiveSession(score)
    times = [i * SPQ * 2 for i in range(len(MELODY))]
    times = [t + (20.0 if i >= 12 else 0.0) for i, t in enumerate(times)]  # a 20 s pause
    out = play(s, list(zip(times, MELODY, strict=True)))
    assert [o[0].kind for o in out] == ["correct"] * len(MELODY)
    assert s.tempo_bpm == pytest.approx(60, rel=0.05)
    assert out[20][0].timing == "on_time"


def test_one_hand_only_expects_that_hand_and_calls_the_other_extra() -> None:
    rows = [(float(i), p, 0) for i, p in enumerate(MELODY[:8])]
    rows += [(float(i), 48 + (i % 4) * 2, 1) for i in range(8)]
    score = make_score(rows)
    s = LiveSession(score, SessionOptions(hands="right"))
    out = play(s, [(i * SPQ, p) for i, p in enumerate(MELODY[:4])])
    assert [o[0].kind for o in out] == ["correct"] * 4
    left = s.note_on(4 * SPQ + 0.01, 48, 80)[0]
    assert left.kind == "extra"
    assert "left hand" in left.reason
    rest = play(s, [(i * SPQ, p) for i, p in list(enumerate(MELODY[:8]))[4:]])
    assert [o[0].kind for o in rest] == ["correct"] * 4
    every = [j for o in out + rest for j in o] + s.advance(30.0)
    assert not [j for j in every if j.kind == "missed"]


def accompanied_melody() -> Score:
    """A melody note every second beat over a three-note left-hand chord on every beat:
    leaving out the left hand skips three or six written notes between melody notes."""
    rows: list[tuple[float, int] | tuple[float, int, int]] = []
    for i, p in enumerate(MELODY[:16]):
        rows.append((2.0 * i + 1.0, p + 12, 0))
        for beat in (2.0 * i, 2.0 * i + 1.0):
            base = BASS[i % len(BASS)] - 12
            rows += [(beat, base, 1), (beat, base + 7, 1), (beat, base + 10, 1)]
    return make_score(rows)


@pytest.mark.parametrize("hand", [0, 1])
def test_one_hand_played_without_saying_so_is_followed_and_the_other_is_missed(
    hand: int,
) -> None:
    score = accompanied_melody()
    s = LiveSession(score)  # not told: both hands are expected
    mine = score.notes[score.notes["hand"] == hand]
    said: list[Judgement] = []
    for q in np.unique(mine["onset_q"]):
        chord = mine[mine["onset_q"] == q]
        for k, note in enumerate(chord):
            said += s.note_on(float(q) * SPQ + 0.01 * k, int(note["pitch"]), 80)
    said += s.advance(float(score.notes["onset_q"].max()) * SPQ + 5.0)
    played = [j for j in said if j.perf_id is not None]
    assert [j.kind for j in played] == ["correct"] * len(mine)
    assert [j.score_id for j in played] == [str(i) for i in mine["id"]]
    missed = {j.score_id for j in said if j.kind == "missed"}
    other = {str(i) for i in score.notes["id"][score.notes["hand"] != hand]}
    # all but the chords around the last note played, which no later note makes certain
    assert missed <= other
    assert len(missed) >= len(other) - 6


def test_both_hands_again_after_one_hand_are_followed() -> None:
    score = accompanied_melody()
    s = LiveSession(score)
    notes = score.notes
    said: list[Judgement] = []
    for q in np.unique(notes["onset_q"]):
        chord = notes[notes["onset_q"] == q]
        if q < 12:  # the right hand alone, then both
            chord = chord[chord["hand"] == 0]
        for k, note in enumerate(chord):
            said += list(s.note_on(float(q) * SPQ + 0.01 * k, int(note["pitch"]), 80))
    both = [j for j in said if j.perf_id is not None and j.position and j.position.onset_q >= 12]
    assert both
    assert all(j.kind == "correct" for j in both)


def test_loop_over_bars_wraps_from_last_to_first_bar() -> None:
    score = melody_score()
    s = LiveSession(score, SessionOptions(first_bar=2, last_bar=3))
    loop = MELODY[4:12]
    t = 0.0
    kinds: list[str] = []
    ids: list[str | None] = []
    for _ in range(3):
        for p in loop:
            j = s.note_on(t, p, 80)[0]
            kinds.append(j.kind)
            ids.append(j.score_id)
            t += SPQ
    assert kinds == ["correct"] * 24
    assert ids[:8] == ids[8:16] == ids[16:]


def test_wait_mode_judges_pitch_only() -> None:
    s = LiveSession(melody_score(), SessionOptions(mode="wait"))
    t = 0.0
    out = []
    for i, p in enumerate(MELODY[:10]):
        t += 0.3 + (i % 3) * 2.5  # waits of any length
        out.append(s.note_on(t, p, 80)[0])
    assert [j.kind for j in out] == ["correct"] * 10
    assert {j.timing for j in out} == {"not_judged"}
    assert all(j.timing_ms is None for j in out)


@pytest.mark.parametrize(("strictness", "label"), [(1.0, "late"), (0.0, "on_time")])
def test_strictness_changes_the_timing_label(strictness: float, label: str) -> None:
    s = LiveSession(melody_score(), SessionOptions(strictness=strictness))
    for i in range(6):
        s.note_on(i * SPQ, MELODY[i], 80)
    j = s.note_on(6 * SPQ + 0.08, MELODY[6], 80)[0]
    assert j.timing == label
    assert j.timing_ms == pytest.approx(80, abs=5)
    assert j.timing_beats == pytest.approx(0.16, abs=0.02)


def test_practice_tempo_sets_the_expected_pace() -> None:
    s = LiveSession(melody_score(), SessionOptions(tempo_percent=50))
    assert s.tempo_bpm == pytest.approx(60)


def test_invalid_events_raise_clear_errors_and_lose_nothing() -> None:
    s = LiveSession(melody_score())
    s.note_on(0.0, 60, 80)
    with pytest.raises(InvalidEventError, match="finite"):
        s.note_on(math.nan, 62, 80)
    with pytest.raises(InvalidEventError, match="pitch"):
        s.note_on(0.5, 128, 80)
    with pytest.raises(InvalidEventError, match="velocity"):
        s.note_on(0.5, 62, -1)
    assert s.note_off(0.4, 99) == []  # nothing sounding: ignored
    late = s.note_on(0.5, 62, 80)[0]
    assert late.kind == "correct"
    early = s.note_on(0.2, 64, 80)[0]  # a timestamp from the past is taken as "now"
    assert early.time_s == 0.5
    assert early.perf_id == "p2"
    assert s.note_on(1.0, 64, 80)[0].kind == "correct"


def test_velocity_zero_note_on_is_a_note_off() -> None:
    s = LiveSession(melody_score())
    s.note_on(0.0, 60, 80)
    assert s.note_on(0.3, 60, 0) == []
    assert s.performance().notes["offset_s"][0] == pytest.approx(0.3)


def test_finish_reports_and_then_refuses_more_events() -> None:
    s = LiveSession(melody_score())
    play(s, [(i * SPQ, p) for i, p in enumerate(MELODY)])
    report = s.finish()
    assert len(report.alignment.matches) == len(MELODY)
    with pytest.raises(SessionStateError):
        s.note_on(100.0, 60, 80)
    with pytest.raises(SessionStateError):
        s.finish()


def test_a_slip_onto_the_next_written_pitch_is_a_wrong_note_not_a_leap() -> None:
    # Eighth notes: A4 (69) played as B4 (71), the pitch written next. Taking it for that next
    # note would leap over the A4 (missed) and leave the B4 played on time as extra; it is the
    # A4 played wrong, and the learner is still in place for the B4.
    eighths = [(i * 0.5, p) for i, p in enumerate(MELODY)]
    s = LiveSession(make_score(eighths))
    notes = [(q * SPQ, p) for q, p in eighths[:9]]
    notes[5] = (notes[5][0], 71)
    out = play(s, notes)
    slip = out[5][0]
    assert slip.kind == "wrong_pitch"
    assert (slip.pitch, slip.expected_pitch) == (71, 69)
    assert [o[0].kind for k, o in enumerate(out) if k != 5] == ["correct"] * 8
    assert out[6][0].expected_pitch == 71
    assert not any(j.kind == "missed" for o in out for j in o)


def test_an_ornament_takes_the_key_before_the_note_it_leads_to() -> None:
    # C-Db-Eb grace notes before a long Db on the beat, the bass struck on the beat first:
    # the first Db is the ornament's, the second the written Db, and nothing is missed.
    rows: list[tuple[float, int] | tuple[float, int, int] | tuple[float, int, int, bool]] = [
        (float(i), p) for i, p in enumerate(MELODY[:4])
    ]
    rows += [(4.0, 48, 1), (4.0, 72, 0, True), (4.0, 73, 0, True), (4.0, 75, 0, True)]
    rows += [(4.0, 73, 0), (6.0, 72, 0)]
    score = make_score(rows)
    ids = {
        (float(r["onset_q"]), int(r["pitch"]), bool(r["is_grace"])): str(r["id"])
        for r in score.notes
    }
    s = LiveSession(score)
    notes = [(i * SPQ, p) for i, p in enumerate(MELODY[:4])]
    notes += [(2.0, 48), (2.05, 72), (2.1, 73), (2.15, 75), (2.2, 73), (3.0, 72)]
    out = play(s, notes)
    said = [(o[0].kind, o[0].score_id) for o in out]
    assert said[5:9] == [
        ("correct", ids[(4.0, 72, True)]),
        ("correct", ids[(4.0, 73, True)]),
        ("correct", ids[(4.0, 75, True)]),
        ("correct", ids[(4.0, 73, False)]),
    ]
    assert not any(j.kind == "missed" for o in out for j in o)


@pytest.mark.parametrize(("resume", "after_s"), [(4, 1.3), (20, 1.0)], ids=["back", "ahead"])
def test_a_long_note_cut_short_to_jump_is_followed_within_three_notes(
    resume: int, after_s: float
) -> None:
    # bar 4 ends on a whole note (2 s): the learner leaves it early, before the music asks
    # for the next note, and plays bar 2 again (or goes on to bar 6)
    beats = [*range(13), *range(16, 32)]
    score = make_score([(float(b), MELODY[b]) for b in beats])
    ids = ids_of(score)
    s = LiveSession(score)
    for b in beats[:13]:
        assert s.note_on(b * SPQ, MELODY[b], 80)[0].kind == "correct"
    t = 12 * SPQ + after_s
    again = [b for b in beats if b >= resume][:8]
    after = [s.note_on(t + i * SPQ, MELODY[b], 80)[0] for i, b in enumerate(again)]
    expected = [ids[(float(b), MELODY[b])] for b in again]
    assert notes_until_back_on_place(after, expected) <= 3, [j.reason for j in after]
