"""The registry report and a version's lineage: pure compositions of what the registry reads.

``build_report`` reads every version once (``Registry.versions``: tags + notes in a few git
calls), the stage history once (``git log -- models.yaml``) and the manifest; it never checks
anything out and never imports torch or DVC. ``build_lineage`` follows ``parent`` links
through the same one listing of tags. Neither prints: the CLI renders them.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from gitreg import catalog, lifecycle
from gitreg.context import Context
from gitreg.errors import LineageDepthOutOfRange, ModelNotFound, VersionNotFound
from gitreg.metrics import Direction
from gitreg.metrics import direction as _direction
from gitreg.versions import VersionName, sort_key

if TYPE_CHECKING:
    from gitreg.catalog import VersionInfo

STAGE_ORDER: tuple[str, ...] = ("production", "staging", "canary", "archived")
STATUS_ORDER: tuple[str, ...] = ("validated", "registered", "failed")
# A lineage chain longer than the depth asked for is cut and says where it goes on
# (``continues_at``). pydantic-core refuses to serialize models nested deeper than ~255 levels.
MAX_LINEAGE_DEPTH = 100
LINEAGE_DEPTH_LIMIT = 200


# -- results -----------------------------------------------------------------------------------
class Totals(BaseModel):
    versions: int
    models: int


class ModelSummary(BaseModel):
    model: str
    versions: int
    latest: str | None = None
    latest_at: datetime | None = None
    stages: dict[str, str] = Field(default_factory=dict)  # stage -> version (canary included)
    canary_traffic: float | None = None
    archived: int = 0


class ProductionEntry(BaseModel):
    model: str
    version: str
    algorithm: str | None  # None: models.yaml names a version that is not a tag here
    registered_at: datetime | None
    status: str  # registered | validated | failed | missing
    metrics: dict[str, float] = Field(default_factory=dict)
    since: datetime | None = None  # when the stage last moved to this version (git log)
    previous: str | None = None  # the production version before it, when the history shows one


class MetricPoint(BaseModel):
    version: str
    registered_at: datetime
    value: float


class MetricSeries(BaseModel):
    model: str
    metric: str
    direction: Direction | None = None
    points: list[MetricPoint] = Field(default_factory=list)  # oldest first


class Report(BaseModel):
    generated_at: datetime
    registry: str
    model: str | None = None
    totals: Totals
    by_status: dict[str, int]
    by_stage: dict[str, int]
    by_algorithm: dict[str, int]
    models: list[ModelSummary]
    production: list[ProductionEntry]
    history: list[lifecycle.StageChange]  # newest first
    metrics: list[MetricSeries]


class LineageNode(BaseModel):
    version: str
    model: str
    algorithm: str | None = None
    status: str | None = None
    data_version: str | None = None
    code_commit: str | None = None
    registered_at: datetime | None = None
    parent: LineageNode | None = None
    missing_parent: str | None = None  # the metadata names a parent that is not a version tag
    cycle_at: str | None = None  # the parent is already in the chain: the walk stopped there
    continues_at: str | None = None  # the chain goes on past the depth limit from this parent


# -- building ------------------------------------------------------------------------------------
def _time_order(v: VersionInfo) -> tuple[datetime, VersionName]:
    return (v.registered_at, sort_key(v.version))


def build_report(ctx: Context, model: str | None = None, now: datetime | None = None) -> Report:
    """Totals, stages, current production, promotion history and metric series, one model or all."""
    manifest = ctx.manifest()
    versions = catalog.versions(ctx, model=model)
    if model is not None and not versions and model not in manifest.model.models:
        raise ModelNotFound(model)
    changes = lifecycle.history(ctx, model) if ctx.git.has_commits() else []
    by_name = {v.version: v for v in versions}

    by_status = dict.fromkeys(STATUS_ORDER, 0)
    by_stage = dict.fromkeys(STAGE_ORDER, 0)
    algorithms: Counter[str] = Counter()
    for v in versions:
        by_status[v.status] = by_status.get(v.status, 0) + 1
        for stage in v.stages:
            by_stage[stage] = by_stage.get(stage, 0) + 1
        algorithms[v.algorithm] += 1
    by_algorithm = dict(sorted(algorithms.items(), key=lambda kv: (-kv[1], kv[0])))

    names = sorted(({model} if model else set(manifest.model.models)) | {v.model for v in versions})
    own: dict[str, list[VersionInfo]] = {name: [] for name in names}
    for v in versions:  # newest first, as versions() returns them
        own[v.model].append(v)

    summaries: list[ModelSummary] = []
    production: list[ProductionEntry] = []
    for name in names:
        entry = manifest.model.models.get(name)
        stages = dict(entry.stages) if entry else {}
        if entry and entry.canary:
            stages["canary"] = entry.canary.version
        latest = own[name][0] if own[name] else None
        summaries.append(
            ModelSummary(
                model=name,
                versions=len(own[name]),
                latest=latest.version if latest else None,
                latest_at=latest.registered_at if latest else None,
                stages=stages,
                canary_traffic=entry.canary.traffic if entry and entry.canary else None,
                archived=len(entry.archived) if entry else 0,
            )
        )
        prod = stages.get("production")
        if prod is None:
            continue
        info = by_name.get(prod)
        moved = next(
            (c for c in changes if c.model == name and c.stage == "production" and c.version == prod), None
        )
        production.append(
            ProductionEntry(
                model=name,
                version=prod,
                algorithm=info.algorithm if info else None,
                registered_at=info.registered_at if info else None,
                status=info.status if info else "missing",
                metrics=dict(info.metrics) if info else {},
                since=moved.date if moved else None,
                previous=moved.previous if moved else None,
            )
        )

    higher, lower = manifest.directions()
    series: list[MetricSeries] = []
    for name in names:
        points: dict[str, list[MetricPoint]] = {}
        for v in sorted(own[name], key=_time_order):
            for metric, value in v.metrics.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    points.setdefault(metric, []).append(
                        MetricPoint(version=v.version, registered_at=v.registered_at, value=float(value))
                    )
        for metric in sorted(points):
            series.append(
                MetricSeries(
                    model=name,
                    metric=metric,
                    direction=_direction(metric, higher, lower),
                    points=points[metric],
                )
            )

    return Report(
        generated_at=now or ctx.clock(),
        registry=ctx.root.name,
        model=model,
        totals=Totals(versions=len(versions), models=len(names)),
        by_status=by_status,
        by_stage=by_stage,
        by_algorithm=by_algorithm,
        models=summaries,
        production=production,
        history=changes,
        metrics=series,
    )


def build_lineage(ctx: Context, version: str, max_depth: int = MAX_LINEAGE_DEPTH) -> LineageNode:
    """``version`` and its ancestors through ``parent`` (oldest last), from one listing of tags."""
    if not 1 <= max_depth <= LINEAGE_DEPTH_LIMIT:
        raise LineageDepthOutOfRange(max_depth, LINEAGE_DEPTH_LIMIT)
    by_name = {v.version: v for v in catalog.versions(ctx)}
    if version not in by_name:
        catalog.get(ctx, version)  # raises the precise error (bad name, no such tag, not a gitreg tag)
        raise VersionNotFound(version)
    chain: list[LineageNode] = []
    seen: set[str] = set()
    current: str | None = version
    while current is not None:
        info = by_name[current]
        seen.add(current)
        node = LineageNode(
            version=info.version,
            model=info.model,
            algorithm=info.algorithm,
            status=info.status,
            data_version=info.lineage.data_version,
            code_commit=info.lineage.code_commit,
            registered_at=info.registered_at,
        )
        chain.append(node)
        parent = info.lineage.parent
        current = None
        if not parent:
            break
        if parent in seen:
            node.cycle_at = parent
        elif parent not in by_name:
            node.missing_parent = parent
        elif len(chain) >= max_depth:
            node.continues_at = parent
        else:
            current = parent
    for child, parent_node in itertools.pairwise(chain):
        child.parent = parent_node
    return chain[0]
