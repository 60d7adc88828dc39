"""The heartbeat-and-re-join loop: when each node role re-joins, and that the loop stops on time."""

from __future__ import annotations

import threading
import time

import pytest

from fedchain.shared.config import ConfigError
from fedchain.shared.node.heartbeats import Beat, HeartbeatLoop, RejoinAfter

EN_RULE = RejoinAfter(unknown=10.0, unanswered=10.0)  # an EN: its SN silent for heartbeat_timeout
SN_RULE = RejoinAfter(unknown=0.0, unanswered=None)  # an SN: the entry no longer knows it


class Script:
    """Beats from a list, a clock the test moves, and a record of re-joins."""

    def __init__(self, rule: RejoinAfter, fail_rejoins: int = 0) -> None:
        self.now = 0.0
        self.outcome = Beat.KNOWN
        self.rejoins: list[float] = []
        self.fail_rejoins = fail_rejoins
        self.timeouts: list[float] = []
        self.loop = HeartbeatLoop(self.beat, self.rejoin, interval=2.0, rejoin_after=rule,
                                  stop=threading.Event(), clock=lambda: self.now)

    def beat(self, timeout: float) -> Beat:
        self.timeouts.append(timeout)
        return self.outcome

    def rejoin(self) -> None:
        self.rejoins.append(self.now)
        if self.fail_rejoins:
            self.fail_rejoins -= 1
            raise ConfigError("could not join through the entry")

    def beats(self, outcome: Beat, at: list[float]) -> None:
        self.outcome = outcome
        for t in at:
            self.now = t
            self.loop.step()


def test_an_edge_node_rejoins_after_heartbeat_timeout_of_silence() -> None:
    s = Script(EN_RULE)
    s.beats(Beat.UNANSWERED, [0, 2, 4, 8])
    assert s.rejoins == []
    s.beats(Beat.UNKNOWN, [10])  # failing since t=0, whatever the kind
    assert s.rejoins == [10]
    s.beats(Beat.UNANSWERED, [12, 14])  # the clock starts again after a re-join
    assert s.rejoins == [10]
    assert s.timeouts == [2.0] * 7


def test_an_answer_resets_the_clock() -> None:
    s = Script(EN_RULE)
    s.beats(Beat.UNANSWERED, [0, 8])
    s.beats(Beat.KNOWN, [9])
    s.beats(Beat.UNANSWERED, [12, 20])
    assert s.rejoins == []
    s.beats(Beat.UNANSWERED, [22])
    assert s.rejoins == [22]


def test_a_failed_rejoin_is_tried_again_after_the_same_time(caplog: pytest.LogCaptureFixture) -> None:
    s = Script(EN_RULE, fail_rejoins=1)
    s.beats(Beat.UNANSWERED, [0, 10, 12, 19])
    assert s.rejoins == [10]
    assert "re-join failed: could not join through the entry" in caplog.text
    s.beats(Beat.UNANSWERED, [20])
    assert s.rejoins == [10, 20]


def test_a_super_node_keeps_serving_while_the_entry_is_silent_and_rejoins_when_unknown() -> None:
    s = Script(SN_RULE)
    s.beats(Beat.UNANSWERED, [0, 100, 1000])
    assert s.rejoins == []
    s.beats(Beat.UNKNOWN, [1002])
    assert s.rejoins == [1002]
    s.beats(Beat.UNKNOWN, [1004])  # still unknown (or the re-join was lost): at once again
    assert s.rejoins == [1002, 1004]


def test_run_beats_every_interval_and_ends_promptly_on_stop() -> None:
    stop = threading.Event()
    beats: list[float] = []

    def beat(_timeout: float) -> Beat:
        beats.append(time.monotonic())
        return Beat.KNOWN

    loop = HeartbeatLoop(beat, lambda: None, interval=0.05, rejoin_after=EN_RULE, stop=stop,
                         beat_at_start=True)
    t0 = time.monotonic()
    worker = threading.Thread(target=loop.run)
    worker.start()
    time.sleep(0.3)
    stop.set()
    worker.join(1.0)
    assert not worker.is_alive()
    assert beats[0] - t0 < 0.04  # beat_at_start: the first beat does not wait an interval
    assert 3 <= len(beats) <= 8


def test_a_long_interval_does_not_delay_the_stop() -> None:
    stop = threading.Event()
    loop = HeartbeatLoop(lambda _t: Beat.KNOWN, lambda: None, interval=60.0, rejoin_after=SN_RULE,
                         stop=stop)
    worker = threading.Thread(target=loop.run)
    worker.start()
    t0 = time.monotonic()
    stop.set()
    worker.join(1.0)
    assert not worker.is_alive() and time.monotonic() - t0 < 1.0
