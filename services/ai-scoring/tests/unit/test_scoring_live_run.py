"""A live run rebuilt from its log is the same run: resume loses and repeats nothing."""

from pathlib import Path

import pytest
from sonata_engine import (
    LiveSession,
    SessionOptions,
    load_performance,
    load_score,
    score_from_dict,
    score_to_dict,
)
from sonata_scoring.domain.clock import Calibration
from sonata_scoring.domain.live import LiveRun, judgement_dict
from sonata_scoring.domain.protocol import NoteEvent

VIENNA = Path(__file__).resolve().parents[5] / "shared" / "eval" / "vienna4x22"


@pytest.fixture(scope="module")
def take() -> tuple[object, list[NoteEvent]]:
    score = score_from_dict(
        score_to_dict(load_score(VIENNA / "midi" / "Schubert_D783_no15_p01.mid"))
    )
    notes = load_performance(VIENNA / "midi" / "Schubert_D783_no15_p02.mid").notes
    events = []
    for n in notes[:120]:
        events.append(NoteEvent(float(n["onset_s"]), "on", int(n["pitch"]), int(n["velocity"])))
        events.append(NoteEvent(float(n["offset_s"]), "off", int(n["pitch"])))
    events.sort(key=lambda e: (e.t, e.kind == "on"))
    return score, events


def test_judgements_equal_the_engine_fed_directly(take: tuple[object, list[NoteEvent]]) -> None:
    score, events = take
    run = LiveRun(score, SessionOptions())  # type: ignore[arg-type]
    engine = LiveSession(score)  # type: ignore[arg-type]
    mine, theirs = [], []
    for i in range(0, len(events), 7):
        mine += run.notes(i, events[i : i + 7]).judgements
        for e in events[i : i + 7]:
            if e.kind == "on":
                theirs += engine.note_on(e.t, e.value, e.velocity)
            else:
                engine.note_off(e.t, e.value)
    assert mine == theirs
    assert {j.kind for j in mine} >= {"correct"}


def test_rebuild_replays_only_what_the_client_has_not_seen(
    take: tuple[object, list[NoteEvent]],
) -> None:
    score, events = take
    options = SessionOptions()
    run = LiveRun(score, options)  # type: ignore[arg-type]
    said: dict[int, list[object]] = {}
    half = len(events) // 2
    for seq, i in enumerate(range(0, half, 5), start=1):
        said[seq] = list(run.notes(seq, events[i : min(i + 5, half)]).judgements)
    rebuilt, replay = LiveRun.rebuild(score, options, run.log, replay_after=3)  # type: ignore[arg-type]
    assert sorted(replay) == [s for s in sorted(said) if s > 3 and said[s]]
    assert all(replay[s] == said[s] for s in replay)
    # from here both runs judge the rest identically
    rest = events[half:]
    assert rebuilt.notes(99, rest).judgements == run.notes(99, rest).judgements
    assert rebuilt.finish().overall == pytest.approx(run.finish().overall)


def test_a_pause_is_taken_out_of_the_learners_time(take: tuple[object, list[NoteEvent]]) -> None:
    score, events = take
    straight = LiveRun(score, SessionOptions())  # type: ignore[arg-type]
    paused = LiveRun(score, SessionOptions())  # type: ignore[arg-type]
    cut = 40
    a = [(j.kind, j.score_id, j.timing) for j in straight.notes(1, events).judgements]
    b = [(j.kind, j.score_id, j.timing) for j in paused.notes(1, events[:cut]).judgements]
    paused.pause(2, events[cut - 1].t)
    paused.resume_play(3, events[cut - 1].t + 30.0)
    later = [NoteEvent(e.t + 30.0, e.kind, e.value, e.velocity) for e in events[cut:]]
    b += [(j.kind, j.score_id, j.timing) for j in paused.notes(4, later).judgements]
    assert a == b


def test_clock_calibration_finds_the_offset_through_uneven_round_trips() -> None:
    cal = Calibration(probes=5)
    offset = 1234.5  # the device's clock is this far ahead
    for probe, (send, rtt) in enumerate(
        [(0.0, 0.020), (1.0, 0.022), (2.0, 0.300), (3.0, 0.021), (4.0, 0.019)]
    ):
        cal.probe(probe, send)
        assert cal.reply(probe, send + rtt / 2 + offset, send + rtt)
    assert not cal.reply(9, 0.0, 0.0)
    assert cal.done
    est = cal.estimate()
    assert est.offset_s == pytest.approx(offset, abs=0.002)
    assert est.rtt_s == pytest.approx(0.021, abs=0.001)
    assert est.samples == 5


def test_judgements_on_the_wire_are_the_engines_own_dicts(
    take: tuple[object, list[NoteEvent]],
) -> None:
    score, events = take
    run = LiveRun(score, SessionOptions())  # type: ignore[arg-type]
    judged = [j for i, e in enumerate(events) for j in run.notes(i, [e]).judgements]
    judged += run.session.advance(1e9)  # the rest of the score passed by: missed notes
    assert {j.kind for j in judged} >= {"correct", "missed"}
    assert any(j.position is not None for j in judged)
    for j in judged:
        assert judgement_dict(j) == j.to_dict()


class _Clocked:
    """Stands in for the engine's session where the server's clock reaches it: the device
    times `advance` is asked about."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def advance(self, t: float) -> list[object]:
        self.asked.append(t)
        return []


def test_the_devices_jitter_widens_the_margin_before_the_clock_calls_a_note_missed(
    take: tuple[object, list[NoteEvent]],
) -> None:
    score, events = take
    offset = 500.0  # device clock minus server clock
    asked = {}
    for jitter in (0.0, 0.1):
        run = LiveRun(score, SessionOptions())  # type: ignore[arg-type]
        run.set_offset(0, offset, jitter)
        run.notes(1, events[:20])
        clocked = _Clocked()
        run.session = clocked  # type: ignore[assignment]
        run.advance_to_server_time(1, 1000.0)
        asked[jitter] = clocked.asked
    assert asked[0.0] == [pytest.approx(1500.0)]
    assert asked[0.1] == [pytest.approx(1500.0 - 3 * 0.1)]  # three jitters of margin
    # a rebuilt run keeps the margin; rows from before the jitter was kept have none
    rebuilt, _ = LiveRun.rebuild(score, SessionOptions(), [[0, "offset", offset, 0.1]], 0)  # type: ignore[arg-type]
    old, _ = LiveRun.rebuild(score, SessionOptions(), [[0, "offset", offset]], 0)  # type: ignore[arg-type]
    assert (rebuilt.margin_s, old.margin_s, old.calibrated) == (pytest.approx(0.3), 0.0, True)
