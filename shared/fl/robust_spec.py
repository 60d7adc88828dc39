"""The text that names an aggregation rule (``--aggregator`` / ``FEDCHAIN_AGGREGATOR``).

Grammar: one rule, optionally joined by ``+`` with a norm bound, in any order::

    mean | median | trimmed:β | krum:f | multikrum:f[,m] | bulyan:f      (the rule)
    clip:τ                                                               (the norm bound)

e.g. ``krum:1``, ``trimmed:0.1``, ``clip:2`` (the clipped mean), ``clip:2+krum:1``.
``parse_aggregator`` checks the text and returns an ``AggregatorSpec``; its ``str()`` is
the canonical spelling (clip first) that the settings, genesis and the results record.
This module needs no torch, so the settings can check the text cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

RULES: tuple[str, ...] = ("mean", "median", "trimmed", "krum", "multikrum", "bulyan")
"""The aggregation rules; ``clip`` is a bound that combines with any of them."""

USAGE = "mean, median, trimmed:β, krum:f, multikrum:f[,m], bulyan:f, optionally with clip:τ+"


class AggregatorSpecError(ValueError):
    """The aggregator text cannot be parsed; the message names the part and the fix."""


@dataclass(frozen=True)
class AggregatorSpec:
    """A parsed aggregator.

    Attributes:
        rule: one of ``RULES``.
        beta: ``trimmed``: the fraction cut at each end of every coordinate (0 <= β < 0.5).
        f: ``krum`` / ``multikrum`` / ``bulyan``: the number of Byzantine updates tolerated.
        m: ``multikrum``: how many updates are kept (None: all but ``f``).
        clip: the norm bound τ (distances from the global model above τ x their median
            are scaled down to it), or None.
    """

    rule: str = "mean"
    beta: float | None = None
    f: int | None = None
    m: int | None = None
    clip: float | None = None

    @property
    def decomposable(self) -> bool:
        """True when the aggregate can be summed in parts (the plain mean, no bound)."""
        return self.rule == "mean" and self.clip is None

    def rule_text(self) -> str:
        """The rule alone, e.g. ``multikrum:2,5``."""
        if self.rule == "trimmed":
            return f"trimmed:{self.beta:g}"
        if self.rule == "multikrum" and self.m is not None:
            return f"multikrum:{self.f},{self.m}"
        if self.rule in ("krum", "multikrum", "bulyan"):
            return f"{self.rule}:{self.f}"
        return self.rule

    def __str__(self) -> str:
        if self.clip is None:
            return self.rule_text()
        bound = f"clip:{self.clip:g}"
        return bound if self.rule == "mean" else f"{bound}+{self.rule_text()}"


def _number(part: str, text: str, kind: type[int] | type[float]) -> float:
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise AggregatorSpecError(f"aggregator '{part}': '{text}' is not {what}") from None


def _args(part: str, name: str, args: list[str], count: tuple[int, int], example: str) -> None:
    low, high = count
    if not low <= len(args) <= high:
        raise AggregatorSpecError(f"aggregator '{part}': {name} takes {example}")


def parse_aggregator(text: str) -> AggregatorSpec:
    """Parse ``text`` (see the module doc); raise AggregatorSpecError saying what is wrong."""
    cleaned = "".join(text.split()).lower()
    if not cleaned:
        raise AggregatorSpecError(f"aggregator is empty (use {USAGE})")
    rule: dict[str, object] | None = None
    clip: float | None = None
    for part in cleaned.split("+"):
        name, _, rest = part.partition(":")
        args = rest.split(",") if rest else []
        if name == "clip":
            if clip is not None:
                raise AggregatorSpecError(f"aggregator '{text}': clip is given twice")
            _args(part, name, args, (1, 1), "one bound τ > 0, e.g. clip:2")
            clip = _number(part, args[0], float)
            if not 0 < clip < float("inf"):
                raise AggregatorSpecError(f"aggregator '{part}': the bound τ must be > 0")
            continue
        if name not in RULES:
            raise AggregatorSpecError(f"aggregator '{part}': unknown rule '{name}' (use {USAGE})")
        if rule is not None:
            raise AggregatorSpecError(
                f"aggregator '{text}': two rules ({rule['rule']} and {name}); "
                "only clip:τ combines with a rule"
            )
        rule = {"rule": name}
        if name in ("mean", "median"):
            _args(part, name, args, (0, 0), "no parameter")
        elif name == "trimmed":
            _args(part, name, args, (1, 1), "one fraction β in [0, 0.5), e.g. trimmed:0.1")
            beta = _number(part, args[0], float)
            if not 0 <= beta < 0.5:
                raise AggregatorSpecError(f"aggregator '{part}': β must be in [0, 0.5)")
            rule["beta"] = beta
        else:
            example = "f[,m], e.g. multikrum:2 or multikrum:2,10" if name == "multikrum" else (
                f"the number f of updates to tolerate, e.g. {name}:1"
            )
            _args(part, name, args, (1, 2 if name == "multikrum" else 1), example)
            f = int(_number(part, args[0], int))
            if f < 0:
                raise AggregatorSpecError(f"aggregator '{part}': f must be 0 or more")
            rule["f"] = f
            if len(args) == 2:
                m = int(_number(part, args[1], int))
                if m < 1:
                    raise AggregatorSpecError(f"aggregator '{part}': m must be at least 1")
                rule["m"] = m
    spec = dict(rule or {"rule": "mean"})
    return AggregatorSpec(
        rule=str(spec["rule"]),
        beta=spec.get("beta"),  # type: ignore[arg-type]
        f=spec.get("f"),  # type: ignore[arg-type]
        m=spec.get("m"),  # type: ignore[arg-type]
        clip=clip,
    )
