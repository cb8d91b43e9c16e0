"""Context features as a vector: numbers standardized, categories one-hot, a bias first.

The spec is learned from the training window (which keys are numbers, which are
categories and their values) and stored in the artifact, so scoring encodes exactly as
training did. An unseen category or a missing key encodes as zeros: the model then leans
on the bias and the other features, never on a guess.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from copilot.ranking import Feature

MAX_LEVELS = 24  # categories kept per key (the most frequent); the rest encode as zeros
BIAS = "(bias)"
_NUMBERS = (int, float, bool)  # exact types: a str is never a number, a bool is a 0/1 flag


class NumericFeature(BaseModel):
    """A number's name and the mean and scale it is standardized with."""

    model_config = ConfigDict(frozen=True)

    name: str
    mean: float
    scale: float


class FeatureSpec(BaseModel):
    """How a features mapping becomes a vector; `names` lists its columns in order."""

    model_config = ConfigDict(frozen=True)

    numeric: tuple[NumericFeature, ...] = ()
    categorical: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def names(self) -> list[str]:
        """Column names: the bias, the numbers, then `key=value` per category level."""
        cats = [f"{key}={v}" for key, values in self.categorical for v in values]
        return [BIAS, *(f.name for f in self.numeric), *cats]

    @property
    def width(self) -> int:
        """The vector's length."""
        return 1 + len(self.numeric) + sum(len(v) for _, v in self.categorical)

    def encode(self, features: Mapping[str, Feature]) -> NDArray[np.float64]:
        """One context as a vector (see the module docstring for the unseen and missing)."""
        row = np.zeros(self.width)
        self.encode_into(row, features)
        return row

    def encode_into(self, row: NDArray[np.float64], features: Mapping[str, Feature]) -> None:
        """Write one context's vector into ``row`` (zeroed by the caller)."""
        row[0] = 1.0
        i = 1
        for f in self.numeric:
            value = features.get(f.name)
            if type(value) in _NUMBERS:
                row[i] = (float(value) - f.mean) / f.scale  # type: ignore[arg-type]
            i += 1
        for key, values in self.categorical:
            value = features.get(key)
            if isinstance(value, str) and value in values:
                row[i + values.index(value)] = 1.0
            i += len(values)

    def sparse(self, features: Mapping[str, Feature]) -> list[tuple[int, float]]:
        """One context's non-zero columns as (index, value): the scoring hot path's form."""
        out = [(0, 1.0)]
        i = 1
        for f in self.numeric:
            value = features.get(f.name)
            if type(value) in _NUMBERS:
                out.append((i, (float(value) - f.mean) / f.scale))  # type: ignore[arg-type]
            i += 1
        for key, values in self.categorical:
            value = features.get(key)
            if type(value) is str and value in values:
                out.append((i + values.index(value), 1.0))
            i += len(values)
        return out

    def matrix(self, contexts: Sequence[Mapping[str, Feature]]) -> NDArray[np.float64]:
        """Many contexts as rows."""
        n = len(contexts)
        out = np.zeros((n, self.width))
        out[:, 0] = 1.0
        i = 1
        for f in self.numeric:  # column by column: one pass per key, no per-row call
            raw = [c.get(f.name) for c in contexts]
            col = np.fromiter((float(v) if type(v) in _NUMBERS else np.nan for v in raw),  # type: ignore[arg-type]
                              np.float64, n)  # fmt: skip
            out[:, i] = np.where(np.isnan(col), 0.0, (col - f.mean) / f.scale)
            i += 1
        for key, values in self.categorical:
            where = {v: j for j, v in enumerate(values)}
            hits = [(r, where[v]) for r, c in enumerate(contexts)
                    if type(v := c.get(key)) is str and v in where]  # fmt: skip
            if hits:
                rows, cols = zip(*hits, strict=True)
                out[np.asarray(rows), i + np.asarray(cols)] = 1.0
            i += len(values)
        return out


def fit_spec(contexts: Iterable[Mapping[str, Feature]]) -> FeatureSpec:
    """Learn the spec from the training contexts (keys sorted, so it is reproducible)."""
    rows = list(contexts)
    keys = sorted({k for c in rows for k in c})
    numeric, categorical = [], []
    for key in keys:
        raw = [c.get(key) for c in rows]
        levels = Counter(v for v in raw if type(v) is str)
        numbers = [float(v) for v in raw if type(v) in _NUMBERS]  # type: ignore[arg-type]
        if numbers and len(numbers) >= len(levels):
            values = np.asarray(numbers)
            scale = float(values.std())
            numeric.append(NumericFeature(name=key, mean=_round(float(values.mean())),
                                          scale=_round(scale) if scale > 1e-12 else 1.0))  # fmt: skip
        elif levels:
            top = sorted(v for v, _ in levels.most_common(MAX_LEVELS))
            categorical.append((key, tuple(top)))
    return FeatureSpec(numeric=tuple(numeric), categorical=tuple(categorical))


def _round(x: float) -> float:
    """Ten significant digits: the artifact's bytes do not depend on the BLAS's last bit."""
    return float(f"{x:.10g}")


__all__ = ["BIAS", "FeatureSpec", "NumericFeature", "fit_spec"]
