"""schemathesis against the OpenAPI of every HTTP service, live on 127.0.0.1: the entry SN's
control API, a plain SN (which forwards to the entry), an EN and the ledger. No request may get
a 5xx, and every 4xx carries a JSON ``detail`` a person can read.

Bounded: a few dozen generated requests per operation and a wall-clock budget per service.
POSTs are fuzzed without the API token (401 expected); authorised bad bodies are checked by
hand below, because fuzzing /train or /save with the token would start training or write files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.badinput.conftest import LiveNet
from tests.network.harness import API_TOKEN

EXAMPLES = 25
BUDGET_S = 60.0


def problem(method: str, url: str, status: int, body: bytes) -> str | None:
    """What is wrong with one answer (None when it is fine): a 5xx, or a 4xx without a JSON detail."""
    if status >= 500:
        return f"{method} {url} -> {status}: {body[:200]!r}"
    if 400 <= status < 500:
        import json

        try:
            detail = json.loads(body).get("detail")
        except (ValueError, AttributeError):
            detail = None
        if not detail:
            return f"{method} {url} -> {status} without a JSON detail: {body[:200]!r}"
    return None


def fuzz_service(base: str) -> tuple[list[str], int]:
    """Run generated requests against every operation of ``base``; returns (problems, requests sent)."""
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    problems: list[str] = []
    seen: set[tuple[str, str, int]] = set()
    sent = [0]
    stop_at = time.monotonic() + BUDGET_S
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == "/events":  # an endless event stream with no input (tests/services/sn/dashboard)
            continue

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(op.as_strategy())
        def one(case: Any) -> None:
            if time.monotonic() > stop_at:
                return
            response = case.call(timeout=30)
            sent[0] += 1
            found = problem(case.method, response.request.url, response.status_code, response.content)
            key = (case.method, op.path, response.status_code)  # noqa: B023 - one() runs in this iteration
            if found and key not in seen:
                seen.add(key)
                problems.append(found)

        one()
    return problems, sent[0]


@pytest.mark.parametrize("service", ["entry", "sn", "en", "ledger"])
def test_openapi_fuzz_no_5xx_and_4xx_with_message(live: LiveNet, service: str) -> None:
    proc = {"entry": live.entry, "sn": live.sn, "en": live.en, "ledger": live.ledger}[service]
    problems, sent = fuzz_service(proc.http)
    assert sent >= 3, f"only {sent} requests were generated for {service}"
    assert not problems, f"{len(problems)} problem(s) on {service}:\n" + "\n".join(problems[:20])
    assert httpx.get(proc.http + "/health", timeout=10).status_code == 200, "the service stopped answering"


BAD_BODIES: list[tuple[str, Any, int]] = [
    ("/train", {"rounds": 0}, 422),
    ("/train", {"rounds": -3}, 422),
    ("/train", {"rounds": "many"}, 422),
    ("/train", {"rounds": 10**30}, 422),
    ("/train", {"rounds": 1, "algorithm": "fedsgd"}, 422),
    ("/train", None, 422),
    ("/train", [1, 2], 422),
    ("/train-fl", {"rounds": 0}, 422),
    ("/train-fl", {}, 422),
    ("/save", {"name": 17}, 422),
    ("/save", {"path": "/tmp/model.safetensors"}, 422),
    ("/save", {"name": "../node.key"}, 422),
    ("/save", {"name": "/etc/passwd"}, 422),
    ("/save", {"name": "models/../../node.key"}, 422),
    ("/save", {"name": ".."}, 422),
    ("/save", {"name": ""}, 422),
    ("/save", {"name": "x" * 101}, 422),
]


@pytest.mark.parametrize(("path", "body", "status"), BAD_BODIES, ids=[f"{p} {b!r}" for p, b, _ in BAD_BODIES])
@pytest.mark.parametrize("via", ["entry", "sn"])
def test_authorised_bad_bodies_are_refused_with_a_message(
    live: LiveNet, via: str, path: str, body: Any, status: int
) -> None:
    proc = live.entry if via == "entry" else live.sn
    before = live.net.get("/status")
    r = httpx.post(proc.http + path, json=body, timeout=30, headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert r.status_code == status, f"{path} {body!r} via {via}: {r.status_code} {r.text}"
    assert isinstance(r.json().get("detail"), str) and r.json()["detail"], r.text
    after = live.net.get("/status")
    assert (after["state"], after["round"], after["height"]) == (before["state"], before["round"], before["height"])


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe", b"rounds=1", b'{"rounds": 1' + b" " * 10])
def test_non_json_bodies_are_refused(live: LiveNet, raw: bytes) -> None:
    r = httpx.post(
        live.entry.http + "/train", content=raw, timeout=30,
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"], r.text
    assert live.net.get("/status")["state"] == "idle"


def test_save_cannot_overwrite_the_node_key(live: LiveNet) -> None:
    """With the API token, /save writes under the entry's models folder and nowhere else."""
    height = live.net.get("/status")["height"]
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    for body in ({"path": "node.key"}, {"name": "../node.key"}, {"name": "node.key/../../x"}):
        r = httpx.post(live.entry.http + "/save", json=body, timeout=30, headers=headers)
        assert r.status_code == 422, r.text
        assert "file name" in r.json()["detail"] or "not a path" in r.json()["detail"], r.text
    assert live.net.get("/status")["height"] == height, "a refused save still wrote a checkpoint block"
    ok = httpx.post(live.entry.http + "/save", json={"name": "node.key"}, timeout=30, headers=headers)
    assert ok.status_code == 200, ok.text
    saved = Path(ok.json()["path"])
    assert saved.name == "node.key.safetensors" and saved.parent.name == "models"


HUGE = str(2**64)  # past every SQL BIGINT and protobuf int64 (found by the fuzzer on the ledger)


@pytest.mark.parametrize(
    ("who", "path"),
    [("ledger", f"/blocks?from={HUGE}"), ("ledger", f"/blocks/{HUGE}"), ("entry", f"/blocks?from={HUGE}"),
     ("entry", f"/model?version={HUGE}"), ("sn", f"/blocks?from={HUGE}")],
)
def test_integers_past_int64_are_a_4xx(live: LiveNet, who: str, path: str) -> None:
    proc = {"ledger": live.ledger, "entry": live.entry, "sn": live.sn}[who]
    r = httpx.get(proc.http + path, timeout=30)
    assert 400 <= r.status_code < 500, f"{who} {path}: {r.status_code} {r.text}"
    assert r.json()["detail"], r.text
