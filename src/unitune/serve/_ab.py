"""A/B splits: `--ab MODEL_A=0.9,MODEL_B=0.1` sends each user to one arm, always the same one.

The arm is chosen by a stable hash of the user id (the `X-Unitune-User` header, else the request's
`user` field), so one user sees one model for the whole experiment and the arms' metrics compare
like with like. A request with no user id is assigned by a hash of its id: random, but recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from unitune.errors import ConfigurationError

__all__ = ["ABSplit"]

_SCALE = 2**64


@dataclass(frozen=True)
class ABSplit:
    """Arms (model ids) with their traffic shares, which sum to 1."""

    arms: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, spec: str) -> ABSplit:
        """`"A=0.9,B=0.1"` (shares are normalised when they do not sum to 1 exactly)."""
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigurationError(
                "An A/B split is empty.", fix="Write e.g. --ab local:ftjob-a=0.9,local:ftjob-b=0.1"
            )
        arms: list[tuple[str, float]] = []
        for part in spec.split(","):
            model, sep, share_text = part.strip().rpartition("=")
            try:
                share = float(share_text)
            except ValueError:
                share = -1.0
            if not sep or not model or not share > 0:
                raise ConfigurationError(
                    f"Cannot read the A/B arm {part.strip()!r}: it must be MODEL=SHARE with a share above 0.",
                    fix="Write e.g. --ab local:ftjob-a=0.9,local:ftjob-b=0.1",
                )
            arms.append((model, share))
        names = [m for m, _ in arms]
        if len(arms) < 2 or len(set(names)) != len(names):
            raise ConfigurationError(
                f"An A/B split needs two or more different models, not {spec!r}.",
                fix="Write e.g. --ab local:ftjob-a=0.9,local:ftjob-b=0.1",
            )
        total = sum(s for _, s in arms)
        return cls(tuple((m, s / total) for m, s in arms))

    @property
    def models(self) -> list[str]:
        """The arms' model ids, in the order given."""
        return [m for m, _ in self.arms]

    def choose(self, key: str) -> str:
        """The arm for `key` (a user id): the same key always gets the same arm."""
        point = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / _SCALE
        edge = 0.0
        for model, share in self.arms:
            edge += share
            if point < edge:
                return model
        return self.arms[-1][0]  # float rounding at the very top of the range

    def __str__(self) -> str:
        return ",".join(f"{m}={s:g}" for m, s in self.arms)
