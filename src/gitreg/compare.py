"""`gitreg compare`: metrics side by side with the winner of each, and the parameters that differ."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from gitreg import catalog
from gitreg import metrics as mx
from gitreg.context import Context
from gitreg.errors import TooFewVersions, VersionNamedTwice


class MetricRow(BaseModel):
    name: str
    values: dict[str, float | None]
    direction: mx.Direction | None
    winner: str | None


class ParameterRow(BaseModel):
    name: str
    values: dict[str, Any]
    differs: bool


class Comparison(BaseModel):
    versions: list[str]
    models: dict[str, str]
    metrics: list[MetricRow]
    parameters: list[ParameterRow]


def compare(ctx: Context, versions: Sequence[str]) -> Comparison:
    """Two or more versions side by side: each metric with its direction and winner, each parameter."""
    if len(versions) < 2:
        raise TooFewVersions(len(versions))
    if len(set(versions)) != len(versions):
        raise VersionNamedTwice(next(v for v in versions if versions.count(v) > 1))
    infos = [catalog.get(ctx, v) for v in versions]
    higher, lower = ctx.manifest().directions()
    metric_names = sorted({m for i in infos for m in i.metrics})
    metrics = []
    for name in metric_names:
        values = {i.version: i.metrics.get(name) for i in infos}
        direction = mx.direction(name, higher, lower)
        winner = mx.winner(values, direction)
        metrics.append(MetricRow(name=name, values=values, direction=direction, winner=winner))
    param_names = sorted({p for i in infos for p in i.parameters})
    parameters = []
    for name in param_names:
        values = {i.version: i.parameters.get(name) for i in infos}
        distinct = {repr(v) for v in values.values()}
        parameters.append(ParameterRow(name=name, values=values, differs=len(distinct) > 1))
    return Comparison(
        versions=[i.version for i in infos],
        models={i.version: i.model for i in infos},
        metrics=metrics,
        parameters=parameters,
    )
