"""The nodes' one retry policy: pauses, bounds (attempts, deadline), the stop event, what is retried."""

from __future__ import annotations

import threading
import time

import pytest

from fedchain.shared.net.retry import RETRY, RetryInterrupted, RetryPolicy


class Recorder(threading.Event):
    """A stop event that is never set and records the pauses asked of it (without waiting)."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.pauses.append(timeout)
        return False


class Flaky:
    """Fails with ``error`` ``failures`` times, then returns "ok"."""

    def __init__(self, failures: int, error: type[BaseException] = ConnectionError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "ok"


def connection_errors(error: BaseException) -> bool:
    return isinstance(error, ConnectionError)


def test_retries_until_the_attempt_succeeds() -> None:
    attempt, stop = Flaky(3), Recorder()
    assert RETRY.call(attempt, retry_on=connection_errors, stop=stop) == "ok"
    assert attempt.calls == 4 and len(stop.pauses) == 3


def test_the_pauses_grow_exponentially_with_jitter_and_are_capped() -> None:
    policy = RetryPolicy(first_s=0.3, factor=2, max_s=3.0, jitter_s=0.3)
    stop = Recorder()
    assert policy.call(Flaky(12), retry_on=connection_errors, stop=stop) == "ok"
    floors = [min(0.3 * 2**n, 2.7) for n in range(12)]  # the exponential part, capped at max - jitter
    for pause, floor in zip(stop.pauses, floors, strict=True):
        assert floor <= pause <= floor + 0.3 + 1e-9
        assert pause <= policy.max_s + 1e-9
    assert len(set(stop.pauses)) > 1


def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    attempt = Flaky(100)
    with pytest.raises(ConnectionError, match="failure 4"):
        RetryPolicy(attempts=4).call(attempt, retry_on=connection_errors, stop=Recorder())
    assert attempt.calls == 4


def test_the_deadline_bounds_the_total_time() -> None:
    attempt = Flaky(1000)
    policy = RetryPolicy(first_s=0.05, max_s=0.2, jitter_s=0.05, deadline_s=0.6)
    t0 = time.monotonic()
    with pytest.raises(ConnectionError):
        policy.call(attempt, retry_on=connection_errors)
    elapsed = time.monotonic() - t0
    assert 0.3 <= elapsed <= 0.6 + 0.1, elapsed  # no pause ends past the deadline
    assert attempt.calls >= 3


def test_within_sets_the_deadline_and_keeps_the_pauses() -> None:
    policy = RETRY.within(5.0)
    assert policy.deadline_s == 5.0 and (policy.first_s, policy.max_s) == (RETRY.first_s, RETRY.max_s)


def test_an_error_not_to_be_retried_is_raised_at_once() -> None:
    attempt, stop = Flaky(5, error=PermissionError), Recorder()
    with pytest.raises(PermissionError, match="failure 1"):
        RETRY.call(attempt, retry_on=lambda e: not isinstance(e, PermissionError), stop=stop)
    assert attempt.calls == 1 and stop.pauses == []


def test_the_stop_event_ends_a_pause_at_once() -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    attempt = Flaky(100)
    t0 = time.monotonic()
    with pytest.raises(RetryInterrupted):
        RetryPolicy(first_s=30, max_s=30, jitter_s=0).call(attempt, retry_on=connection_errors, stop=stop)
    assert time.monotonic() - t0 < 1.0
    assert attempt.calls == 1


def test_a_stop_already_set_makes_no_attempt() -> None:
    stop = threading.Event()
    stop.set()
    attempt = Flaky(0)
    with pytest.raises(RetryInterrupted):
        RETRY.call(attempt, retry_on=connection_errors, stop=stop)
    assert attempt.calls == 0


def test_on_retry_is_told_each_retried_failure_and_its_pause() -> None:
    seen: list[tuple[str, float]] = []
    stop = Recorder()
    RETRY.call(Flaky(2), retry_on=connection_errors, stop=stop, on_retry=lambda e, p: seen.append((str(e), p)))
    assert [m for m, _ in seen] == ["failure 1", "failure 2"]
    assert [p for _, p in seen] == stop.pauses


@pytest.mark.parametrize(
    "fields",
    [{"first_s": 0}, {"factor": 0.5}, {"jitter_s": 5, "max_s": 3}, {"first_s": 4, "max_s": 3},
     {"attempts": 0}, {"deadline_s": 0}],
)
def test_a_policy_that_makes_no_sense_is_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="retry policy"):
        RetryPolicy(**fields)  # type: ignore[arg-type]
