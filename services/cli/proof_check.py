"""`fedchain verify --proof FILE` and `fedchain verify --round R --node ID --api HOST:PORT`:
check one EN's inclusion proof offline (shared/chain/round_proof.py).

Prints one line: ``ok: …`` (exit 0) or ``FAILED: <reason>`` (exit 1). A proof that cannot
be read or fetched is exit 2 (bad input) or 3 (the entry cannot be reached).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from fedchain.shared.chain.round_proof import ProofInvalid, RoundProof, check_proof

FETCH_TIMEOUT_S = 60.0


class ProofFetchFailed(RuntimeError):
    """The proof could not be read or fetched; ``code`` is the exit code to use."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def read_proof(path: Path) -> Any:
    """The JSON of a proof file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProofFetchFailed(f"cannot read {path}: {exc.strerror or exc}", 2) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProofFetchFailed(f"{path} is not JSON: {exc}", 2) from None


def fetch_proof(api: str, round_no: int, node_id: str) -> Any:
    """``GET /rounds/{r}/proof/{node_id}`` of the entry (or any SN) at ``api`` (HOST:PORT)."""
    url = f"http://{api}/rounds/{round_no}/proof/{node_id}"
    try:
        r = httpx.get(url, timeout=FETCH_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise ProofFetchFailed(f"{api} is unreachable: {type(exc).__name__}", 3) from None
    if r.status_code != 200:
        try:
            detail = r.json().get("detail", r.text)
        except (json.JSONDecodeError, AttributeError):
            detail = r.text
        raise ProofFetchFailed(f"no proof from {api}: {str(detail)[:300]}", 2 if r.status_code < 500 else 3)
    try:
        return r.json()
    except json.JSONDecodeError:
        raise ProofFetchFailed(f"{api} did not answer JSON", 3) from None


def proof_verdict(data: Any, genesis: bytes | None) -> tuple[bool, str]:
    """(ok, the one line to print) for a proof's JSON."""
    try:
        proof = RoundProof.from_json(data)
        row = check_proof(proof, genesis)
    except ProofInvalid as exc:
        return False, f"FAILED: {exc}"
    return True, (
        f"ok: {row.node_id} signed update {row.update_digest[:16]}… ({row.samples} samples, "
        f"SN {row.parent_sn}) and it counted in round {proof.round} "
        f"(block {proof.block.height}, {proof.block.hash.hex()[:16]}…)"
    )
