"""The scorecard: every benchmark split and metric, our models' values beside the published ones.

One row per ``(benchmark split, metric)`` of the catalog (each dataset's metrics, on each of its
evaluation splits), in catalog order. Values are shown as percentages, as papers print them (our
metric files hold fractions). ``status`` says where a value comes from:

- ``scored here``: the metrics file of the split has the key;
- ``needs server``: the split's labels are held by an evaluation server (MeViS valid, Ref-YouTube-VOS
  valid), so nothing here can score it;
- ``not scored``: the split is scored here but this metric was not computed (e.g. the mask metrics,
  which need SAM2 masks, before those land), or the split was not evaluated in this run.

``difference`` is ours (the first scored model, normally ``trained``) minus the upstream number, or
minus the best anchor's where upstream publishes none, in percentage points.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import catalog, paths
from .published import UPSTREAM, published_for

COUNTS = ("n", "unparseable", "expressions")


def read_metrics(models: Sequence[str], root: str | os.PathLike = ".") -> dict[str, dict[tuple[str, str], dict]]:
    """``{model: {(dataset, split): metrics}}`` of every metrics file present under ``root``."""
    found: dict[str, dict[tuple[str, str], dict]] = {}
    for model in models:
        for d in catalog.DATASETS:
            for s in d.eval_splits:
                path = Path(root) / paths.split_metrics(model, d.name, s.name)
                if path.is_file():
                    found.setdefault(model, {})[(d.name, s.name)] = json.loads(path.read_text())
    return found


def scorecard_rows(metrics: Mapping[str, Mapping[tuple[str, str], Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The rows described in the module docstring."""
    models = list(metrics)
    rows = []
    for d in catalog.DATASETS:
        for s in d.eval_splits:
            published = published_for(d.name, s.name)
            found = [
                k
                for model in models
                for k, v in metrics[model].get((d.name, s.name), {}).items()
                if isinstance(v, float) and k not in COUNTS
            ]
            keys = list(dict.fromkeys([*found, *d.metrics, *(m for _, m, _ in published)]))
            for key in keys:
                ours = {}
                for model in models:
                    value = metrics[model].get((d.name, s.name), {}).get(key)
                    ours[model] = None if value is None else 100.0 * value
                numbers = [(who, v) for who, m, v in published if m == key]
                reference = next((v for who, v in numbers if who == UPSTREAM.model), None)
                if reference is None and numbers:
                    reference = max(v for _, v in numbers)
                first = ours.get(models[0]) if models else None
                if s.ground_truth == "server":
                    status = "needs server"
                elif any(v is not None for v in ours.values()):
                    status = "scored here"
                else:
                    status = "not scored"
                rows.append(
                    {
                        "benchmark": f"{d.title} {s.name}",
                        "dataset": d.name,
                        "split": s.name,
                        "metric": key,
                        "ours": ours,
                        "published": numbers,
                        "difference": None if first is None or reference is None else first - reference,
                        "status": status,
                        "n": metrics[models[0]].get((d.name, s.name), {}).get("n") if status == "scored here" else None,
                    }
                )
    return rows
