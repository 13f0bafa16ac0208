"""Fusion under a false-alarm budget: members judged against real faces only.

A fitted stack weights each member by what the validation split shows, so a specialist that
is good at a kind of fake the split lacks gets a weight near zero. This rule needs only the
reals. Each member's score on a face becomes a tail probability among the held-in real
faces: tail(s) = (1 + #reals scoring >= s) / (n + 1), the share of real faces that look at
least this suspicious to that member (a conformal p-value). Per source of reals it is
computed separately and the largest is kept, so a face must look extreme next to the reals of
every source. A face is `fake` when any member's tail falls below its share of the budget
(budget / members: a union bound), so the whole calls at most about `budget` of each source's
reals fake while every member can add what it alone catches. `real` is left to the stacked
model's own calibration (90% precision, as today).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_SOURCE_REALS = 20  # as models/calibration.py: fewer reals, and a source counts only pooled


@dataclass
class RealTail:
    """One member's scores on held-in reals: pooled and per source with enough of them."""

    pooled: np.ndarray
    per_source: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def fit(cls, scores, sources=None, min_source_reals: int = MIN_SOURCE_REALS) -> "RealTail":
        s = np.sort(np.asarray(scores, dtype=np.float64))
        if not len(s):
            raise ValueError("no real faces to fit a tail on")
        per = {}
        if sources is not None:
            src = np.asarray(sources).astype(str)
            for name in sorted(set(src.tolist())):
                m = src == name
                if m.sum() >= min_source_reals:
                    per[name] = np.sort(np.asarray(scores, dtype=np.float64)[m])
        return cls(s, per)

    def tail(self, scores) -> np.ndarray:
        """Largest tail probability of `scores` over the pooled reals and each source's."""
        x = np.asarray(scores, dtype=np.float64)
        out = _tail(self.pooled, x)
        for reals in self.per_source.values():
            out = np.maximum(out, _tail(reals, x))
        return out

    def to_dict(self) -> dict:
        return {"pooled": self.pooled.tolist(), "per_source": {k: v.tolist() for k, v in self.per_source.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "RealTail":
        return cls(np.asarray(d["pooled"], np.float64), {k: np.asarray(v, np.float64) for k, v in d["per_source"].items()})


def _tail(sorted_reals: np.ndarray, x: np.ndarray) -> np.ndarray:
    at_least = len(sorted_reals) - np.searchsorted(sorted_reals, x, side="left")
    return (1.0 + at_least) / (len(sorted_reals) + 1.0)


@dataclass
class BudgetFusion:
    """fake when any member's tail < budget / members; the rest goes to the stack's own rule."""

    members: list[str]
    tails: list[RealTail]
    budget: float = 0.05

    @property
    def share(self) -> float:
        return self.budget / len(self.members)

    def evidence(self, member_scores) -> np.ndarray:
        """Per face, the smallest member tail times the number of members (Bonferroni): below
        `budget` means fake. Lower is more suspicious; a score to rank faces by."""
        m = np.asarray(member_scores, dtype=np.float64).reshape(-1, len(self.members))
        tails = np.stack([t.tail(m[:, j]) for j, t in enumerate(self.tails)], axis=1)
        return tails.min(axis=1) * len(self.members)

    def verdicts(self, member_scores, stack_verdicts) -> list[str]:
        """`fake` by the budget rule; otherwise the stack's `real` stands; else `uncertain`."""
        fake = self.evidence(member_scores) < self.budget
        return ["fake" if f else ("real" if v == "real" else "uncertain") for f, v in zip(fake, stack_verdicts)]

    @classmethod
    def fit(cls, members: list[str], real_scores, sources=None, budget: float = 0.05,
            min_source_reals: int = MIN_SOURCE_REALS) -> "BudgetFusion":
        """real_scores: (n reals, members) on held-in validation reals; sources: each real's
        (a source with fewer than min_source_reals counts only in the pooled tail).
        The smallest tail a source of n reals can give is 1 / (n + 1): a share of the budget
        below that could never call a face fake, which is refused rather than shipped."""
        r = np.asarray(real_scores, dtype=np.float64).reshape(-1, len(members))
        fusion = cls(list(members), [RealTail.fit(r[:, j], sources, min_source_reals) for j in range(len(members))], budget)
        sizes = {"all reals": len(fusion.tails[0].pooled),
                 **{k: len(v) for k, v in fusion.tails[0].per_source.items()}}
        name, n = min(sizes.items(), key=lambda kv: kv[1])
        if fusion.share < 1.0 / (n + 1):
            raise ValueError(f"a budget of {budget:.1%} over {len(members)} members gives each {fusion.share:.2%}, "
                             f"under the smallest tail that {name} ({n} reals) can give (1/{n + 1}): nothing could "
                             f"ever be called fake; use fewer members, a larger budget, or more validation reals")
        return fusion
