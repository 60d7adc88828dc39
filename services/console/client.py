"""ControlClient: the console's HTTP client of a super node's control API (docs/control-api.md).

Every request has an explicit timeout; every failure becomes a :class:`ConsoleError`
whose message is one line: nothing listening, no answer in time, not a fedchain node,
an edge node, a refused token, or the node's own ``detail`` message.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from fedchain.services.console.errors import (
    ApiError,
    AuthError,
    ConnectError,
    ConsoleError,
    UsageError,
)
from fedchain.shared.control_api import (
    BlockInfo,
    EvalResult,
    Health,
    NodeStatus,
    PauseResult,
    RoundEvidence,
    RoundSummary,
    SaveResult,
    SuperNodeInfo,
    TrainStarted,
    VerifyResult,
)
from fedchain.shared.digests import is_hex64
from fedchain.shared.safetensors_header import (
    LENGTH_BYTES,
    HeaderError,
    header_length,
    parse_header,
)

M = TypeVar("M", bound=BaseModel)

DOWNLOAD_CHUNK = 1 << 20


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _detail(response: httpx.Response) -> str:
    """The node's error message: FastAPI's ``detail`` (string or validation list) or the text."""
    try:
        body = response.json()
    except ValueError:
        return _one_line(response.text) or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _one_line(f"{loc}: {first.get('msg', '')}" if loc else str(first.get("msg", "")))
    if detail is None:
        return response.reason_phrase
    return _one_line(str(detail))


class ControlClient:
    """Talks to one node's HTTP control API at ``base_url`` with a bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
            timeout=httpx.Timeout(timeout),
            transport=transport,
            verify=verify,
            follow_redirects=True,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing -------------------------------------------------------------------

    def _transport_error(self, exc: httpx.HTTPError, method: str, path: str) -> ConsoleError:
        if isinstance(exc, httpx.TimeoutException):
            return ConnectError(
                f"{self.base_url} did not answer {method} {path} within {self.timeout:g} s (--timeout)"
            )
        if isinstance(exc, httpx.ConnectError) and "SSL" in str(exc):
            return ConnectError(
                f"TLS with {self.base_url} failed: {_one_line(str(exc))} "
                "(--ca: the CA of the network's certificates, e.g. fedchain certs' ca.pem)"
            )
        if isinstance(exc, httpx.ConnectError):
            return ConnectError(
                f"cannot connect to {self.base_url}: nothing answers there "
                "(is the network up? `fedchain up --keep` starts one)"
            )
        return ConnectError(f"{self.base_url}: {method} {path} failed: {_one_line(str(exc)) or type(exc).__name__}")

    def _check(self, response: httpx.Response, method: str, path: str) -> None:
        if response.status_code == 401:
            raise AuthError(
                f"{self.base_url} refused the API token ({_detail(response)}): "
                "set FEDCHAIN_API_TOKEN or --token to the network's token"
            )
        if response.status_code >= 400:
            raise ApiError(
                f"{method} {path}: {_detail(response)} (HTTP {response.status_code})", response.status_code
            )

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, method, path) from None
        self._check(response, method, path)
        try:
            return response.json()
        except ValueError:
            raise ConnectError(
                f"{self.base_url} answered {method} {path} with something that is not JSON: "
                "is it a fedchain node's HTTP port?"
            ) from None

    def _parse(self, model: type[M], body: Any, method: str, path: str) -> M:
        """``body`` as ``model``; a shape that does not fit is a one-line ConnectError."""
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            errors = exc.errors()
            where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
            why = errors[0]["msg"] if errors else "invalid"
            raise ConnectError(
                f"{self.base_url} answered {method} {path} with an unexpected shape "
                f"({where or 'body'}: {why}): is it a fedchain node of this version?"
            ) from None

    def _get(self, model: type[M], path: str, **kwargs: Any) -> M:
        return self._parse(model, self._request("GET", path, **kwargs), "GET", path)

    def _get_list(self, model: type[M], path: str, **kwargs: Any) -> list[M]:
        body = self._request("GET", path, **kwargs)
        if not isinstance(body, list):
            raise ConnectError(f"{self.base_url} answered GET {path} with an unexpected shape")
        return [self._parse(model, item, "GET", path) for item in body]

    def _post(self, model: type[M], path: str, body: dict[str, Any] | None = None) -> M:
        answer = self._request("POST", path, json=body if body is not None else {})
        return self._parse(model, answer, "POST", path)

    # ---- the control API ------------------------------------------------------------

    def health(self) -> Health:
        """GET /health."""
        return self._get(Health, "/health")

    def ensure_super_node(self) -> Health:
        """Check that ``base_url`` is a fedchain super node; refuse an edge node or anything else."""
        try:
            body = self._request("GET", "/health")
        except ApiError:
            raise ConnectError(f"{self.base_url} is not a fedchain node (no /health)") from None
        role = body.get("role") if isinstance(body, dict) else None
        if role not in ("SN", "EN"):
            raise ConnectError(f"{self.base_url} is not a fedchain super node (/health role: {role!r})")
        health = self._parse(Health, body, "GET", "/health")
        if health.role == "EN":
            raise ConnectError(
                f"{self.base_url} is an edge node (EN {health.node_id}); the console "
                "talks to a super node - use an SN's HTTP port (the entry's is 9080)"
            )
        return health

    def status(self) -> NodeStatus:
        """GET /status."""
        return self._get(NodeStatus, "/status")

    def train(self, rounds: int, algorithm: str | None) -> TrainStarted:
        """POST /train: start (or resume) ``rounds`` rounds."""
        return self._post(TrainStarted, "/train", {"rounds": rounds, "algorithm": algorithm})

    def train_fl(self, rounds: int) -> TrainStarted:
        """POST /train-fl: classic FedAvg over the same network."""
        return self._post(TrainStarted, "/train-fl", {"rounds": rounds})

    def pause(self) -> PauseResult:
        """POST /pause: finish the current round, then hold."""
        return self._post(PauseResult, "/pause")

    def save(self, name: str | None) -> SaveResult:
        """POST /save: a checkpoint block plus a model file (``name``, no path) on the entry."""
        return self._post(SaveResult, "/save", {"name": name})

    def evaluate(self) -> EvalResult:
        """POST /eval: personal accuracy per EN and pooled."""
        return self._post(EvalResult, "/eval")

    def super_nodes(self) -> list[SuperNodeInfo]:
        """GET /sn."""
        return self._get_list(SuperNodeInfo, "/sn")

    def rounds(self) -> list[RoundSummary]:
        """GET /rounds."""
        return self._get_list(RoundSummary, "/rounds")

    def blocks(self, limit: int, start: int | None = None) -> list[BlockInfo]:
        """GET /blocks: the last ``limit`` blocks, or ``limit`` blocks from height ``start``."""
        params: dict[str, int] = {"limit": limit}
        if start is not None:
            params["from"] = start
        return self._get_list(BlockInfo, "/blocks", params=params)

    def verify(self) -> VerifyResult:
        """GET /verify: recompute the chain from its rows."""
        return self._get(VerifyResult, "/verify")

    def round_evidence(self, round_no: int) -> RoundEvidence:
        """GET /rounds/{r}: what round ``round_no``'s block attests."""
        return self._get(RoundEvidence, f"/rounds/{round_no}")

    def chain_model_digest(self, version: int) -> str:
        """The digest the chain records for model ``version`` (genesis for 0, else its round block)."""
        if version == 0:
            genesis = self.blocks(1, start=0)
            digest = genesis[0].payload.get("model_digest") if genesis else None
        else:
            digest = next((r.model_digest for r in self.rounds() if r.model_version == version), None)
        if not isinstance(digest, str) or not is_hex64(digest):
            raise ConsoleError(f"getModel(): the chain records no model version {version}; nothing was written")
        return digest

    def download_model(self, version: int | None, path: str | None) -> dict[str, Any]:
        """GET /model into ``path`` (default ``model-v<version>.safetensors``).

        The bytes go to a temporary file next to the target; the file is renamed into place
        only when its SHA-256 equals the digest the chain records for that version (and the
        node's ``X-Model-Digest`` header agrees) and it has a safetensors header, so a failed
        or forged download changes nothing. The version the node reports must be a number:
        it becomes part of the file name.
        """
        params = {"version": version} if version is not None else {}
        target_dir, target_name = self._target(path)
        try:
            with self._http.stream("GET", "/model", params=params) as response:
                if response.status_code >= 400:
                    response.read()
                self._check(response, "GET", "/model")
                announced = response.headers.get("X-Model-Digest", "").strip().lower()
                got_version = response.headers.get("X-Model-Version", "").strip()
                if not announced:
                    raise ApiError("GET /model: the node sent no X-Model-Digest header; nothing was written", 200)
                if not got_version.isdigit() or len(got_version) > 19 or (
                    version is not None and int(got_version) != version
                ):
                    raise ConsoleError(
                        f"getModel(): the node answered with model version {got_version[:40]!r}"
                        f"{'' if version is None else f' for version {version}'}; nothing was written"
                    )
                number = int(got_version)
                expected = self.chain_model_digest(number)
                if announced != expected:
                    raise ConsoleError(
                        f"getModel(): digest mismatch: the node announces {announced[:16]}... for version "
                        f"{number}, the chain records {expected[:16]}...; nothing was written"
                    )
                name = target_name or f"model-v{number}.safetensors"
                target = target_dir / name
                size, actual = self._stream_to(response, target, expected)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, "GET", "/model") from None
        return {
            "version": number,
            "digest": actual,
            "bytes": size,
            "path": str(target),
        }

    @staticmethod
    def _target(path: str | None) -> tuple[Path, str | None]:
        if path is None:
            return Path.cwd(), None
        target = Path(os.path.expanduser(path))
        if target.is_dir():
            return target, None
        if not target.parent.is_dir():
            raise UsageError(f"getModel(): directory {target.parent} does not exist")
        return target.parent, target.name

    @staticmethod
    def _stream_to(response: httpx.Response, target: Path, expected: str) -> tuple[int, str]:
        sha = hashlib.sha256()
        size = 0
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        except OSError as exc:
            raise ConsoleError(f"getModel(): cannot write in {target.parent}: {exc.strerror}") from None
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                    sha.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            actual = sha.hexdigest()
            if actual != expected:
                raise ConsoleError(
                    f"getModel(): digest mismatch (X-Model-Digest {expected[:16]}..., "
                    f"received bytes hash to {actual[:16]}...); nothing was written"
                )
            _check_safetensors(tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return size, actual


def _check_safetensors(path: Path) -> None:
    """Refuse a file that is not laid out as safetensors (the shared header check)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(LENGTH_BYTES)
        try:
            header = head + f.read(header_length(head, size))
            parse_header(header, size)
        except HeaderError as exc:
            raise ConsoleError(f"getModel(): the download is not a safetensors file ({exc})") from None
