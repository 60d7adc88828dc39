"""Following a training run: done, stopped short, timed out, left with Ctrl-C."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from fedchain.services.console.errors import ApiError, AuthError, ConnectError, ConsoleError
from fedchain.services.console.progress import follow_training
from fedchain.shared.control_api import NodeStatus, RoundSummary, TrainStarted


def _round(n: int) -> RoundSummary:
    return RoundSummary(round=n, algorithm="fedper", model_version=n, accuracy=0.1 * n,
                        participants=["a"], height=n + 1)


class ScriptedNode:
    """Answers /status from a script (the last answer repeats) and /rounds from a list."""

    def __init__(self, statuses: list[NodeStatus], rounds: list[RoundSummary]) -> None:
        self.statuses = statuses
        self.all_rounds = rounds
        self.polls = 0

    def status(self) -> NodeStatus:
        answer = self.statuses[min(self.polls, len(self.statuses) - 1)]
        self.polls += 1
        return answer

    def rounds(self) -> list[RoundSummary]:
        done = self.statuses[min(self.polls - 1, len(self.statuses) - 1)].round
        return [r for r in self.all_rounds if r.round <= done]


class Clock:
    def __init__(self, interrupt_after: int | None = None) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.interrupt_after = interrupt_after

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.interrupt_after is not None and self.sleeps >= self.interrupt_after:
            raise KeyboardInterrupt
        self.now += seconds


class RecordingView:
    def __init__(self) -> None:
        self.updates: list[tuple[int, int]] = []

    def update(self, status: NodeStatus, rounds: list[RoundSummary]) -> None:
        self.updates.append((status.round, len(rounds)))


def _follow(node: ScriptedNode, clock: Clock, view: RecordingView, target: int, prev: int, timeout: float | None):  # type: ignore[no-untyped-def]
    @contextmanager
    def open_view(start: TrainStarted) -> Iterator[RecordingView]:
        yield view

    start = TrainStarted(algorithm="fedper", start_round=prev + 1, target_round=target)
    return follow_training(node, open_view, start, prev, timeout, poll_interval=1.0, settle_seconds=2.0,
                           clock=clock, sleep=clock.sleep)


def st(state: str, rnd: int, target: int = 4) -> NodeStatus:
    return NodeStatus(node_id="n-1", role="SN", entry=True, state=state, algorithm="fedper", round=rnd,
                      target_round=target, model_version=rnd, height=rnd + 1, ens=2, sns=1)


def test_follows_until_the_target_and_returns_only_this_runs_rounds() -> None:
    node = ScriptedNode([st("training", 2), st("training", 3), st("training", 3), st("idle", 4)],
                        [_round(n) for n in range(1, 5)])
    clock, view = Clock(), RecordingView()
    outcome = _follow(node, clock, view, target=4, prev=2, timeout=60)
    assert [r.round for r in outcome.data["rounds"]] == [3, 4]
    assert not outcome.interrupted and outcome.data["status"].round == 4
    assert view.updates == [(2, 0), (3, 1), (3, 1), (4, 2)]


def test_training_that_stops_short_is_a_failure() -> None:
    node = ScriptedNode([st("training", 1), st("paused", 2)], [_round(1), _round(2)])
    with pytest.raises(ConsoleError, match=r"training stopped after round 2 of 4 \(state: paused\); train\(\) resumes"):
        _follow(node, Clock(), RecordingView(), target=4, prev=0, timeout=60)


def test_a_moment_of_idle_right_after_start_is_tolerated() -> None:
    node = ScriptedNode([st("idle", 0), st("training", 0), st("idle", 4)], [_round(n) for n in range(1, 5)])
    outcome = _follow(node, Clock(), RecordingView(), target=4, prev=0, timeout=60)
    assert len(outcome.data["rounds"]) == 4


def test_following_gives_up_after_the_timeout() -> None:
    node = ScriptedNode([st("training", 1)], [_round(1)])
    clock = Clock()
    with pytest.raises(ConsoleError, match=r"training still running after 5 s \(round 1 of 4\); it goes on"):
        _follow(node, clock, RecordingView(), target=4, prev=0, timeout=5)
    assert clock.now == pytest.approx(5.0)


def test_ctrl_c_leaves_the_display_without_error() -> None:
    node = ScriptedNode([st("training", 1), st("training", 2)], [_round(1), _round(2)])
    outcome = _follow(node, Clock(interrupt_after=2), RecordingView(), target=4, prev=0, timeout=None)
    assert outcome.interrupted
    assert outcome.data["status"].round == 2


class FlakyNode(ScriptedNode):
    """A ScriptedNode whose status polls number ``down`` fail with ``error`` (an outage)."""

    def __init__(self, statuses: list[NodeStatus], rounds: list[RoundSummary], down: range,
                 error: ConsoleError) -> None:
        super().__init__(statuses, rounds)
        self.down = down
        self.error = error
        self.calls = 0

    def status(self) -> NodeStatus:
        self.calls += 1
        if self.calls in self.down:
            raise self.error
        return super().status()


def _follow_flaky(node: FlakyNode, clock: Clock, notices: list[str], outage: float = 30.0):  # type: ignore[no-untyped-def]
    @contextmanager
    def open_view(start: TrainStarted) -> Iterator[RecordingView]:
        yield RecordingView()

    start = TrainStarted(algorithm="fedper", start_round=1, target_round=3)
    return follow_training(node, open_view, start, 0, None, poll_interval=1.0, settle_seconds=2.0,
                           clock=clock, sleep=clock.sleep, notice=notices.append, outage_seconds=outage)


@pytest.mark.parametrize("error", [
    ConnectError("cannot connect to http://127.0.0.1:8080: nothing answers there"),
    ApiError("GET /status: the ledger is unavailable (HTTP 503)", 503),
], ids=["entry-restarting", "database-down"])
def test_a_short_outage_is_waited_out_and_said(error: ConsoleError) -> None:
    node = FlakyNode([st("training", 1), st("training", 2), st("training", 3)],
                     [_round(n) for n in range(1, 4)], down=range(2, 12), error=error)
    clock, notices = Clock(), []
    outcome = _follow_flaky(node, clock, notices)
    assert [r.round for r in outcome.data["rounds"]] == [1, 2, 3]
    assert len(notices) == 2, notices
    assert notices[0].startswith("waiting for the node") and str(error) in notices[0]
    assert "up to 30 s" in notices[0]
    assert notices[1] == "the node answers again after 10 s"


def test_a_long_outage_gives_up_with_one_line_after_the_stated_time() -> None:
    node = FlakyNode([st("training", 1)], [_round(1)], down=range(2, 10_000),
                     error=ConnectError("cannot connect to http://127.0.0.1:8080: nothing answers there"))
    clock, notices = Clock(), []
    with pytest.raises(ConsoleError, match=r"gave up after waiting 30 s: cannot connect"):
        _follow_flaky(node, clock, notices)
    assert 30 <= clock.now <= 32
    assert len(notices) == 1


@pytest.mark.parametrize("error", [
    AuthError("refused the API token"), ApiError("GET /status: bad request (HTTP 400)", 400),
], ids=["token", "bad-request"])
def test_errors_a_wait_cannot_cure_are_reported_at_once(error: ConsoleError) -> None:
    node = FlakyNode([st("training", 1)], [_round(1)], down=range(2, 3), error=error)
    clock, notices = Clock(), []
    with pytest.raises(type(error)):
        _follow_flaky(node, clock, notices)
    assert notices == [] and clock.now <= 1
