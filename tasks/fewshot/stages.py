"""Prefect tasks of the ``fewshot_adapt`` flow (issue 18, phase 2); each does one step through
the store, under ``runs/fewshot_adapt/<run_id>/``.

- ``plan_units`` checks every spec in the driver (one clear error before Prefect tasks or Ray
  start) and lists the (method, set, k, seed) units.
- ``episodes_task`` runs the units the ``episodes`` stage (schema ``fewshot_episodes``, key
  ``method|set|k|seed``) lacks: one Ray task per chunk of episodes of one set (the chunk loads
  the set and the backbone once and reuses its feature caches for every episode), one Parquet
  part each; a rerun finds every key and starts no Ray task, adding a seed or a method runs
  only the new units. With robustness on, each adapted model and the episode's unadapted
  prototype head go through ``tasks/fewshot/robustness.py`` on the first ``robust_n`` query
  images (the unadapted evaluation is shared by the methods of an episode in the chunk).
- ``score_task``: the ``leaderboard`` stage (``fewshot_leaderboard``: mean ± std over seeds per
  (method, set, k)) and the plots; ``publish_summary``: the Prefect artifacts.

The run id digests the whole configuration (as ``fairness_evaluate`` does), so the
leaderboard is always over exactly the run's units; a run cut short resumes at its missing
episodes, a finished one is found done.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from trustflow import names
from trustflow.data.schemas import FEWSHOT_EPISODES, FEWSHOT_LEADERBOARD
from trustflow.data.store import StageRef
from trustflow.errors import ConfigError
from trustflow.tasks.artifacts import publish_board
from trustflow.tasks.ray_parts import Chunk, StoreSpec, chunked

FLOW = names.FEWSHOT_ADAPT
ACCURACY_PNG = "accuracy_vs_shots.png"
ROBUSTNESS_PNG = "accuracy_vs_robustness.png"
KEY = ["row_key"]


def digest(payload: Any) -> str:
    """12 hex digits of a JSON payload: same parameters → same run id."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def row_key(method: str, set_name: str, k: int, seed: int) -> str:
    return f"{method}|{set_name}|{k}|{seed}"


def set_name(spec: str) -> str:
    """The name ``load_fewshot_set(spec)`` gives its set (the episodes' RNG and the rows' ``set``),
    checked without loading any image: ``imagefolder:DIR`` → ``imagefolder:<folder name>``."""
    from pathlib import Path

    from trustflow.registry import parse_spec
    from trustflow.tasks.fewshot.data import FEWSHOT_KINDS, edit_set_name

    parsed = parse_spec(spec, "few-shot set spec")
    if parsed.name not in FEWSHOT_KINDS:
        raise ConfigError(f"--sets: unknown few-shot set {spec!r}; known: {', '.join(FEWSHOT_KINDS)}")
    if parsed.name == "imagefolder":
        if not parsed.target:
            raise ConfigError(f"--sets: {spec!r} needs a folder (imagefolder:DIR)")
        return f"imagefolder:{Path(parsed.target).name}"
    if parsed.name == "edits":
        if not parsed.target:
            raise ConfigError(f"--sets: {spec!r} needs an exported edits file (edits:FILE.parquet)")
        return edit_set_name(parsed.target)
    return parsed.name


def check_config(config: Mapping[str, Any]) -> None:
    """Every spec and number of a run, checked in the driver: one ``ConfigError`` naming the
    option, before any service starts."""
    from trustflow.models.vision.attention_pool import BACKBONES
    from trustflow.tasks.fewshot.methods.base import build_method
    from trustflow.tasks.robustness.corruptions import ALL_CORRUPTIONS

    for field in ("methods", "sets", "shots", "seeds"):
        if not config[field]:
            raise ConfigError(f"--{field}: give at least one")
    for m in config["methods"]:
        try:
            build_method(m)
        except ConfigError as exc:
            raise ConfigError(f"--methods: {exc}") from None
    for s in config["sets"]:
        set_name(s)
    if any(k < 1 for k in config["shots"]):
        raise ConfigError(f"--shots: every k must be >= 1, got {config['shots']}")
    if any(s < 0 for s in config["seeds"]):
        raise ConfigError(f"--seeds: seeds must be >= 0, got {config['seeds']}")
    try:
        BACKBONES.resolve(config["backbone"])
    except ConfigError as exc:
        raise ConfigError(f"--backbone: {exc}") from None
    for name in ("epochs", "n_query", "robust_n", "chunks_per_set"):
        if config[name] is not None and config[name] < (0 if name == "epochs" else 1):
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= {0 if name == 'epochs' else 1}")
    unknown = sorted(set(config["corruptions"]) - set(ALL_CORRUPTIONS))
    if unknown:
        raise ConfigError(f"--corruptions: unknown corruption {unknown[0]!r}")


def run_id_of(config: Mapping[str, Any]) -> str:
    """Same units and settings → same run (how many Ray chunks does not change a row)."""
    return f"fewshot-{digest({k: v for k, v in config.items() if k != 'chunks_per_set'})}"


def plan_units(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every (method, set, k, seed) unit, ordered set → k → seed → method, so that a chunk's
    methods share an episode (and its unadapted robustness evaluation)."""
    check_config(config)
    units = []
    for s in dict.fromkeys(config["sets"]):
        name = set_name(s)
        for k in sorted(set(config["shots"])):
            for seed in sorted(set(config["seeds"])):
                for m in dict.fromkeys(config["methods"]):
                    units.append({"method": m, "set": name, "spec": s, "k": int(k), "seed": int(seed)})
    return units


def plan_chunks(units: Sequence[Mapping[str, Any]], done: set[str], per_set: int) -> list[Chunk]:
    """The units whose key the stage lacks, in ``per_set`` chunks per set (Ray tasks), each
    part named by its units' keys."""
    chunks: list[Chunk] = []
    for s in dict.fromkeys(u["spec"] for u in units):
        todo = [u for u in units if u["spec"] == s and row_key(u["method"], u["set"], u["k"], u["seed"]) not in done]
        if todo:
            size = math.ceil(len(todo) / per_set)
            chunks += chunked(todo, size, "episodes", key=lambda u: row_key(u["method"], u["set"], u["k"], u["seed"]))
    return chunks


def export_edits(store: Any, edits: str) -> str:
    """An ``attribute_edits`` stage (``flow/run/stage`` or an attribute_robustness run id) as
    the few-shot set spec ``edits:<file>``: its rows (no masks) written once, atomically, to
    ``<home>/fewshot-edits/<run id>.parquet``, so Ray workers read a file, not the store."""
    import pyarrow.parquet as pq

    from trustflow.errors import InputError
    from trustflow.tasks.attributes.stages import stage_ref
    from trustflow.tasks.fewshot.data import EDIT_COLUMNS

    ref = stage_ref(edits)
    if store.manifest(ref) is None:
        raise InputError(f"--edits: no committed stage {ref} (make edits with trustflow attributes edit …)")
    missing = sorted(set(EDIT_COLUMNS) - set(store.dataset(ref).schema.names))
    if missing:
        raise InputError(f"--edits: stage {ref} is not an attribute_edits stage (no {missing[0]!r} column)")
    path = store.settings.home_dir / "fewshot-edits" / f"{ref.run_id}-{digest([store.url, str(ref)])[:6]}.parquet"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(store.read_table(ref, columns=EDIT_COLUMNS), tmp)
        tmp.replace(path)
    return f"edits:{path}"


@task(name="fewshot-edits-set", cache_policy=NO_CACHE)
def edits_set_task(spec: StoreSpec, edits: str) -> str:
    """``export_edits`` as a flow step."""
    return export_edits(spec.open(), edits)


def _attack_specs() -> tuple[tuple[str, dict[str, Any]], ...]:
    from trustflow.tasks.fewshot.robustness import ATTACKS

    return tuple((n, dict(o)) for n, o in ATTACKS)


def episode_rows(config: Mapping[str, Any], units: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a chunk of units of one set: load the set and backbone once, then each
    episode (and, with robustness on, its deltas against the unadapted prototype head)."""
    import torch

    from trustflow.models.vision.attention_pool import build_backbone
    from trustflow.tasks.fewshot.data import load_fewshot_set, make_episode
    from trustflow.tasks.fewshot.evaluate import Caches, run_episode
    from trustflow.tasks.fewshot.methods.base import AdaptConfig
    from trustflow.tasks.fewshot.robustness import attribute_deltas, robustness_deltas, subset

    torch.set_num_threads(1)
    data = load_fewshot_set(units[0]["spec"])
    backbone = build_backbone(config["backbone"])
    caches = Caches.of(backbone, data)
    base: dict[tuple[int, int], tuple[Any, list[dict[str, Any]] | None]] = {}
    rows = []
    for u in units:
        episode = make_episode(data, u["k"], u["seed"], n_query=config["n_query"])
        adapt = AdaptConfig(epochs=config["epochs"], batch_size=256, seed=u["seed"])
        keep = bool(config["robustness"]) or data.edits is not None
        r = run_episode(u["method"], backbone, data, episode, caches, adapt, keep_model=keep)
        row: dict[str, Any] = {
            "row_key": row_key(u["method"], u["set"], u["k"], u["seed"]),
            "method": u["method"],
            "set": u["set"],
            "k": u["k"],
            "seed": u["seed"],
            "accuracy": float(r.accuracy),
            "n_query": len(episode.query),
            "fit_seconds": float(r.fit_seconds),
            "info": json.dumps(
                {a: b for a, b in r.info.items() if isinstance(b, (int, float, str, bool)) or b is None},
                sort_keys=True,
            ),
            **dict.fromkeys(("robust_accuracy", "delta_attack", "delta_corruption", "mce_vs_baseline", "deltas")),
        }
        key = (u["k"], u["seed"])
        if r.model is not None and key not in base:
            proto = run_episode("prototype", backbone, data, episode, caches, adapt, keep_model=True).model
            base[key] = (proto, None)
        if config["robustness"] and r.model is not None:
            proto, base_rows = base[key]
            queries = subset(data.test, episode.query[: config["robust_n"]])
            out = robustness_deltas(
                r.model,
                proto,
                queries,
                _attack_specs(),
                list(config["corruptions"]),
                (3,),
                seed=u["seed"],
                unadapted_rows=base_rows,
            )
            base[key] = (proto, out["rows"])
            attacks = [v for a, v in out["delta"].items() if a not in ("clean", "corruption")]
            robust = list(out["adapted"]["robust_accuracy"].values())
            row.update(
                robust_accuracy=float(np.mean(robust)) if robust else None,
                delta_attack=float(np.mean(attacks)) if attacks else None,
                delta_corruption=out["delta"].get("corruption"),
                mce_vs_baseline=out["mce_vs_baseline"],
                deltas=json.dumps(out["delta"], sort_keys=True),
            )
        if data.edits is not None and r.model is not None:  # ImageNet-E style edits: per attribute
            edited = attribute_deltas(r.model, base[key][0], data.test, data.edits, episode.query)["delta"]
            row["deltas"] = json.dumps({**json.loads(row["deltas"] or "{}"), **edited}, sort_keys=True)
        rows.append(row)
    return rows


def build_chunk_table(payload: tuple[dict[str, Any], list[dict[str, Any]]]) -> pa.Table:
    config, units = payload
    return pa.Table.from_pylist(episode_rows(config, units), FEWSHOT_EPISODES.schema)


# settings that do not change an episode's row: which units a run holds, and how it is chunked
UNIT_FIELDS = ("methods", "sets", "shots", "seeds", "chunks_per_set")


def cache_ref(config: Mapping[str, Any], spec: str) -> StageRef:
    """The shared episode cache of one set under one run's result-affecting settings
    (backbone, epochs, query and robustness options): ``fewshot_adapt/cache-<12 hex>/episodes``,
    the same for every run that differs only in methods, shots, seeds or other sets."""
    settings = {k: v for k, v in config.items() if k not in UNIT_FIELDS}
    return StageRef(FLOW, f"cache-{digest([settings, spec])}", names.EPISODES)


def _reuse_cached(store: Any, config: Mapping[str, Any], units: Sequence[Mapping[str, Any]], writer: Any) -> int:
    """Copy the rows of ``units`` that the run lacks but a shared cache holds into the run's
    stage (one part per set, named by its keys); returns how many."""
    import pyarrow.compute as pc

    done = {str(k) for k in writer.existing_keys().column("row_key").to_pylist()}
    reused = 0
    for s in dict.fromkeys(u["spec"] for u in units):
        ref = cache_ref(config, s)
        want = [row_key(u["method"], u["set"], u["k"], u["seed"]) for u in units if u["spec"] == s]
        want = [k for k in want if k not in done]
        if not want or store.manifest(ref) is None:
            continue
        table = writer.missing(store.read_table(ref, filter=pc.field("row_key").isin(want)))
        if table.num_rows:
            writer.write_part(table, f"cached-{digest(sorted(table.column('row_key').to_pylist()))}")
            reused += table.num_rows
    return reused


def _fill_cache(store: Any, config: Mapping[str, Any], units: Sequence[Mapping[str, Any]], run: StageRef) -> None:
    """Add the run's rows that its sets' caches lack (one part and a commit per set)."""
    import pyarrow.compute as pc

    for s in dict.fromkeys(u["spec"] for u in units):
        keys = [row_key(u["method"], u["set"], u["k"], u["seed"]) for u in units if u["spec"] == s]
        cache = store.writer(cache_ref(config, s), FEWSHOT_EPISODES, KEY)
        table = cache.missing(store.read_table(run, filter=pc.field("row_key").isin(keys)))
        if table.num_rows:
            cache.write_part(table, f"episodes-{digest(sorted(table.column('row_key').to_pylist()))}")
            cache.commit({"spec": s})


@task(name="fewshot-episodes", cache_policy=NO_CACHE)
def episodes_task(
    spec: StoreSpec, run_id: str, config: dict[str, Any], units: list[dict[str, Any]], parallel: bool = True
) -> dict[str, Any]:
    """Every unit the episodes stage lacks: first from the shared episode cache (``cache_ref``:
    rows an earlier run with the same settings computed), the rest one Ray task (and one part)
    per chunk; then the commit, and the new rows go to the cache."""
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.ray_parts import write_parts_on_ray

    store = spec.open()
    ref = StageRef(FLOW, run_id, names.EPISODES)
    writer = store.writer(ref, FEWSHOT_EPISODES, KEY)
    reused = _reuse_cached(store, config, units, writer)
    done = {str(k) for k in writer.existing_keys().column("row_key").to_pylist()}
    chunks = [Chunk(c.part_id, (config, c.payload)) for c in plan_chunks(units, done, config["chunks_per_set"])]
    stats = {"chunks": len(chunks), "units": len(units), "units_done_before": len(units), "rows_written": 0}
    stats["units_done_before"] = len(units) - sum(len(c.payload[1]) for c in chunks) - reused
    stats["units_from_cache"] = reused
    if chunks and parallel:  # a finished run does not even start Ray
        ensure_ray(store.settings)
        written = write_parts_on_ray(store, ref, FEWSHOT_EPISODES, KEY, chunks, build_chunk_table)
        stats["rows_written"] = written["rows_written"]
    else:
        for c in chunks:
            table = writer.missing(build_chunk_table(c.payload))
            if table.num_rows:
                writer.write_part(table, c.part_id)
            stats["rows_written"] += table.num_rows
    store.writer(ref, FEWSHOT_EPISODES, KEY).commit({"config": config})
    if stats["rows_written"]:
        _fill_cache(store, config, units, ref)
    return {"episodes": str(ref), **stats}


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(kept)) if kept else None


def _mean_deltas(texts: Sequence[str | None]) -> str | None:
    """Mean over seeds of each key of the episodes' ``deltas`` JSON (null when none has any)."""
    values: dict[str, list[float]] = {}
    for text in texts:
        for key, v in json.loads(text or "{}").items():
            values.setdefault(key, []).append(float(v))
    return json.dumps({k: float(np.mean(v)) for k, v in sorted(values.items())}) if values else None


def edit_summary(row: Mapping[str, Any]) -> tuple[float, float] | None:
    """A leaderboard row's attribute-edit deltas vs the backbone, averaged over attributes:
    (Δ accuracy on edits, Δ drop), or None without an edits set (or in an older stage)."""
    deltas = json.loads(row.get("deltas") or "{}")
    attr = [v for k, v in deltas.items() if k.startswith("attr:")]
    drop = [v for k, v in deltas.items() if k.startswith("drop:")]
    return (float(np.mean(attr)), float(np.mean(drop))) if attr and drop else None


def leaderboard(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± (population) std over seeds per (method, set, k), sorted by set, k, then accuracy."""
    cells: dict[tuple[str, str, int], list[Mapping[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["method"], r["set"], int(r["k"])), []).append(r)
    board = []
    for (method, set_name, k), rs in cells.items():
        acc = [float(r["accuracy"]) for r in rs]
        attack = [float(r["delta_attack"]) for r in rs if r["delta_attack"] is not None]
        board.append(
            {
                "row_key": f"{method}|{set_name}|{k}",
                "method": method,
                "set": set_name,
                "k": k,
                "seeds": len(rs),
                "accuracy": float(np.mean(acc)),
                "accuracy_std": float(np.std(acc)),
                "fit_seconds": float(np.mean([r["fit_seconds"] for r in rs])),
                "robust_accuracy": _mean([r["robust_accuracy"] for r in rs]),
                "delta_attack": float(np.mean(attack)) if attack else None,
                "delta_attack_std": float(np.std(attack)) if attack else None,
                "delta_corruption": _mean([r["delta_corruption"] for r in rs]),
                "mce_vs_baseline": _mean([r["mce_vs_baseline"] for r in rs]),
                "deltas": _mean_deltas([r["deltas"] for r in rs]),
            }
        )
    return sorted(board, key=lambda r: (r["set"], r["k"], -r["accuracy"], r["method"]))


@task(name="fewshot-score", cache_policy=NO_CACHE)
def score_task(spec: StoreSpec, run_id: str, episodes: str) -> list[dict[str, Any]]:
    """The leaderboard stage and the two plots of a run (over every episode row it holds)."""
    from trustflow.tasks.fewshot import plots

    store = spec.open()
    rows = store.read_table(StageRef(FLOW, run_id, names.EPISODES)).to_pylist()
    ref = StageRef(FLOW, run_id, names.LEADERBOARD)
    store.write_stage(
        ref,
        FEWSHOT_LEADERBOARD,
        pa.Table.from_pylist(leaderboard(rows), FEWSHOT_LEADERBOARD.schema),
        KEY,
        {"episodes": episodes},
    )
    # what is stored (a resumed run keeps the leaderboard it first wrote), in board order
    stored = store.read_table(ref).to_pylist()
    board = sorted(stored, key=lambda r: (r["set"], r["k"], -r["accuracy"], r["method"]))
    for name, png in (
        (ACCURACY_PNG, plots.accuracy_vs_shots(board)),
        (ROBUSTNESS_PNG, plots.accuracy_vs_robustness(board)),
    ):
        store.write_bytes_atomic(store.path("runs", FLOW, run_id, "plots", name), png)
    return board


def _f(v: Any, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


def markdown_table(board: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| set | k | method | accuracy (mean ± std) | seeds | Δ attack acc | Δ corruption acc | mCE / unadapted |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in board:
        lines.append(
            f"| {r['set']} | {r['k']} | {r['method']} | {_f(r['accuracy'])} ± {_f(r['accuracy_std'])} | {r['seeds']} "
            f"| {_f(r['delta_attack'], '+.3f')} | {_f(r['delta_corruption'], '+.3f')} | {_f(r['mce_vs_baseline'])} |"
        )
    edits = [(r, e) for r in board if (e := edit_summary(r)) is not None]
    if edits:  # an edits set: accuracy on the edits and the drop vs originals, adapted − backbone
        lines += [
            "",
            "| set | k | method | Δ edited acc | Δ drop | per attribute (Δ drop) |",
            "|---|---:|---|---:|---:|---|",
        ]
        for r, (attr, drop) in edits:
            per = ", ".join(
                f"{k.removeprefix('drop:')} {v:+.3f}"
                for k, v in json.loads(r["deltas"]).items()
                if k.startswith("drop:")
            )
            lines.append(f"| {r['set']} | {r['k']} | {r['method']} | {attr:+.3f} | {drop:+.3f} | {per} |")
    return lines


def publish_summary(store_url: str, run_id: str, board: Sequence[Mapping[str, Any]]) -> None:
    """The run's Prefect artifacts: the leaderboard table and a markdown summary."""
    publish_board(
        "fewshot",
        f"Few-shot adaptation `{run_id}`",
        f"few-shot adaptation {run_id}",
        board,
        markdown_table(board),
        f"{store_url}/runs/{FLOW}/{run_id}",
        (ACCURACY_PNG, ROBUSTNESS_PNG),
    )


__all__ = [
    "ACCURACY_PNG",
    "ROBUSTNESS_PNG",
    "build_chunk_table",
    "cache_ref",
    "edit_summary",
    "export_edits",
    "check_config",
    "episode_rows",
    "episodes_task",
    "leaderboard",
    "markdown_table",
    "plan_chunks",
    "plan_units",
    "publish_summary",
    "row_key",
    "run_id_of",
    "score_task",
    "set_name",
]
