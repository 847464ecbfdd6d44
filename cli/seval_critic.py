"""The bodies of ``trustflow seval validate-critic`` and ``train-critic`` (cli/seval.py keeps
only their options), and their terminal tables.

Output contract: with ``--json`` stdout is exactly one JSON document (no tables, no
progress); files (the result JSON and the reliability plot) are written to ``--out``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from trustflow.cli.common import console, emit_json
from trustflow.errors import InputError
from trustflow.settings import Settings


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]", "_", text)[:60]


def _csv_ints(value: str, what: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{what} must be comma-separated layer numbers, got {value!r}") from None


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN → null, numpy scalars → Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def _fmt(m: dict[str, Any], key: str) -> str:
    v = m.get(key, float("nan"))
    ci = m.get("ci95", {}).get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and not math.isnan(ci[0]) else "")


def _print_groups(title: str, groups: dict[str, dict[str, Any]]) -> None:
    table = Table(title=title)
    table.add_column("group", no_wrap=True)
    for col in ("n (unsafe)", "balanced acc. [95% CI]", "precision", "recall", "AUC", "ECE"):
        table.add_column(col, justify="right")
    for name, m in groups.items():
        table.add_row(
            name,
            f"{m['n']} ({m['n_unsafe']})",
            _fmt(m, "balanced_accuracy"),
            _fmt(m, "precision"),
            _fmt(m, "recall"),
            _fmt(m, "auc"),
            _fmt(m, "ece"),
        )
    console.print(table)


def run_validate(
    settings: Settings,
    labels: str,
    critic_spec: str,
    cols: Any,
    limit: int | None,
    out: Path | None,
    as_json: bool,
    cross_source: bool,
    layers: str,
    poolings: str,
    with_written: bool,
    n_boot: int,
) -> None:
    from trustflow.data.store import ArtifactStore
    from trustflow.models.critics import make_critic
    from trustflow.tasks.seval.critic_validation import reliability_plot, validate_records
    from trustflow.tasks.seval.label_sources import load_label_records

    store = ArtifactStore(settings.effective_store_url, settings)
    records = [r for r in load_label_records(labels, cols, store) if r.unsafe is not None]
    if limit:
        records = records[:limit]
    if not records:
        raise InputError(f"{labels}: no rows with a known label")
    out = out or settings.home_dir / "critic-validation" / f"{_safe(critic_spec)}-{_safe(labels)}"
    out.mkdir(parents=True, exist_ok=True)
    critic = make_critic(critic_spec)
    if cross_source:
        result = _cross_source(store, critic, records, layers, poolings, with_written)
    else:
        result = validate_records(critic, records, n_boot=n_boot)
        s = result.pop("_scores")
        groups = {"all": (s["p"], s["y"])} | {
            src: (s["p"][s["source"] == src], s["y"][s["source"] == src]) for src in sorted(set(s["source"].tolist()))
        }
        result["plot"] = str(reliability_plot(groups, out / "reliability.png", f"{critic_spec} on {labels}"))
    from trustflow.tasks.seval.label_sources import label_datasets, records_sha

    provenance = {"labels_sha": records_sha(records), "label_datasets": label_datasets(labels, store)}
    result = _clean({"critic": critic_spec, "labels": labels, **provenance, **result})
    result["result"] = str(out / "validation.json")
    (out / "validation.json").write_text(json.dumps(result, indent=1))
    if as_json:
        emit_json(result)
        return
    if cross_source:
        _print_matrix(result)
    else:
        console.print(
            f"critic {critic_spec} on {labels}: {result['n']} pairs, threshold {result['threshold']}, "
            f"judge-error rate {result['judge_error_rate']:.3f}"
        )
        _print_groups("overall", {"all": result["overall"]})
        _print_groups("per source", result["by_source"])
        _print_groups("per language", result["by_language"])
        console.print(f"reliability plot: {result['plot']}")
    console.print(f"result: {result['result']}")


def _cross_source(
    store: Any, critic: Any, records: list[Any], layers: str, poolings: str, with_written: bool
) -> dict[str, Any]:
    """Leave-one-source-out for a probe critic, on features from the store's cache."""
    from trustflow.data.seval.labels import written_label_records
    from trustflow.models.critics.probe import ProbeCritic
    from trustflow.models.critics.probe_fit import Config
    from trustflow.models.llm.spec import load_backend
    from trustflow.tasks.seval.critic_cross_source import cross_source
    from trustflow.tasks.seval.critic_features import FeatureCache
    from trustflow.tasks.seval.label_sources import judge_item

    if not isinstance(critic, ProbeCritic):
        raise InputError("--cross-source needs a trainable critic: default, probe or probe:<model spec>")
    held_out = sorted({r.source for r in records if r.source})
    both = [s for s in held_out if len({r.unsafe for r in records if r.source == s}) == 2]
    if len(both) < 2:
        raise InputError("--cross-source needs at least two sources with safe and unsafe rows")
    known = {r.label_id for r in records}
    extra = [r for r in written_label_records() if r.label_id not in known] if with_written else []
    rows = records + extra
    layer_list = _csv_ints(layers, "--layers")
    pool_list = [p.strip() for p in poolings.split(",") if p.strip()]
    cache = FeatureCache(store, critic.model_spec, layer_list, pool_list)  # type: ignore[arg-type]
    feats = cache.features([judge_item(r) for r in rows], lambda: load_backend(critic.model_spec))
    configs: list[Config] = [((layer,), p) for layer in cache.layers for p in cache.poolings]

    def getter(config: Config) -> np.ndarray:
        return np.concatenate([feats[(layer, config[1])] for layer in config[0]], axis=1)

    y = np.array([int(bool(r.unsafe)) for r in rows])
    res = cross_source(getter, y, [r.source for r in rows], configs, both, use_written=with_written)
    return {
        "cross_source": res.as_dict(),
        "model": critic.model_spec,
        "layers": cache.layers,
        "poolings": cache.poolings,
    }


def _print_matrix(result: dict[str, Any]) -> None:
    cs = result["cross_source"]
    table = Table(title="leave-one-source-out: trained on every other source, threshold from those sources")
    table.add_column("held-out source", no_wrap=True)
    for col in ("n", "balanced acc.", "precision", "recall", "AUC", "ECE", "threshold", "layer/pooling"):
        table.add_column(col, justify="right")

    def num(v: Any) -> str:
        return "–" if v is None else f"{v:.3f}"

    for name, m in list(cs["held_out"].items()) + [(f"{k} (beside)", v) for k, v in cs["beside"].items()]:
        table.add_row(
            name,
            str(m["n"]),
            num(m["balanced_accuracy"]),
            num(m["precision"]),
            num(m["recall"]),
            num(m["auc"]),
            num(m["ece"]),
            num(m["threshold"]),
            str(m.get("config", cs["final_config"])),
        )
    console.print(table)
    bal = [m["balanced_accuracy"] for m in cs["held_out"].values() if m["balanced_accuracy"] is not None]
    console.print(
        f"mean {np.mean(bal):.3f}, worst {np.min(bal):.3f}; pooled recall at precision ≥ 0.80: "
        f"{cs['pooled']['recall_at_p80']:.3f}"
    )


def run_train(
    labels: list[str], model: str, out: Path, layers: str | None, pooling: str, cols: Any, settings: Settings
) -> dict[str, Any]:
    """Train a probe head on the labels ``labels`` name; the head records which labels trained it."""
    from trustflow.data.store import ArtifactStore
    from trustflow.models.critics.probe import labels_digest, save_head, train_head
    from trustflow.models.llm.spec import load_backend
    from trustflow.tasks.seval.label_sources import judge_item, label_datasets, load_label_records, records_sha

    store = ArtifactStore(settings.effective_store_url, settings)
    by_spec = {spec: [r for r in load_label_records(spec, cols, store) if r.unsafe is not None] for spec in labels}
    records = [r for rs in by_spec.values() for r in rs]
    files = [Path(s) for s in labels if Path(s).is_file()]
    digest = hashlib.sha256("".join(sorted(r.label_id for r in records)).encode()).hexdigest()[:12]
    layer_list = _csv_ints(layers, "--layers") if layers else None
    head = train_head(
        load_backend(model),
        [(judge_item(r), bool(r.unsafe)) for r in records],
        model,
        labels_digest(files) if files and len(files) == len(labels) else digest,
        layers=layer_list,
        pooling=pooling,  # type: ignore[arg-type]
    )
    head.meta["trained_on"] = {
        spec: {
            "rows": len(rs),
            "sources": sorted({r.source for r in rs}),
            "sha": records_sha(rs),  # label ids and labels of exactly these rows
            "datasets": label_datasets(spec, store),  # store datasets read (id, fingerprint, source)
        }
        for spec, rs in by_spec.items()
    }
    head.meta["label_ids_sha"] = digest
    path = save_head(head, str(out))  # a local .npz or store:KEY (probe?head= reads either)
    return {
        "head": path,
        "model": model,
        "layers": head.layers,
        "pooling": head.pooling,
        "rows": len(records),
        "trained_on": head.meta["trained_on"],
    }
