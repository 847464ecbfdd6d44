"""The provenance pipeline's Prefect tasks: each one resumable keyed stage in the store.

Model references (what ``--sources``/``--suspects`` and the flows accept, :func:`portable`):

* ``ckpt:PATH`` and ``run:<training run>[/best|/final]`` as everywhere (``models/vision/resolve.py``);
* ``embed:<run>/<name>``: a source trained in-process by ``fingerprint_embed``
  (``runs/fingerprint_embed/<run>/models/<name>.pt``);
* ``attack:<run>/<suspect>``: a descendant made by an ownership attack
  (``runs/fingerprint_attack/<run>/models/<suspect>.pt``).

Stages:

* ``embed_task`` → ``runs/fingerprint_embed/<run>/fingerprint`` (schema ``fingerprint``, key
  model, filter, channel, u, v): the *registered* fingerprints of the run's sources.
* ``attack_task`` → ``runs/fingerprint_attack/<run>/descendants`` (key ``suspect``, a digest
  of (source, attack spec, seed)) and a checkpoint per descendant; one Ray task per missing
  descendant, each writing its checkpoint then its one-row part, so a killed run resumes
  where it stopped and a rerun adds nothing.
* ``score_task`` → ``runs/fingerprint_trace/<run>/scores`` (key suspect, source, method):
  one Ray task per suspect not yet scored.
* ``verdict_task`` → ``runs/fingerprint_trace/<run>/verdicts`` (key suspect, method): the
  threshold per method calibrated on the suspects whose truth is known (descendants and
  declared independents), as in ``tasks/provenance/verify.trace``.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from trustflow import names
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.errors import InputError
from trustflow.tasks.ray_parts import StoreSpec, ray_map

FINGERPRINT_KEYS = ["model", "filter", "channel", "u", "v"]
EMBED, ATTACK = "embed", "attack"
# the library's method names → the names in the scores/verdicts tables
METHOD_NAMES = {"fingerprint": "ours", "weight_cosine": "weight_cosine", "cka": "cka"}
# thresholds used when the pool holds no suspect of known truth to calibrate on
DEFAULT_THRESHOLDS = {"ours": 0.5, "weight_cosine": 0.9, "cka": 0.9}
INDEPENDENT, GIVEN = "independent", "given"


def digest(payload: Any, n: int = 10) -> str:
    """A short stable hash (run ids, descendant names)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:n]


# ---------------------------------------------------------------- model references


def model_key(store: ArtifactStore, flow: str, run_id: str, name: str) -> str:
    """Where a provenance flow keeps one of its models."""
    return store.path("runs", flow, run_id, "models", f"{name}.pt")


@dataclass(frozen=True)
class Blob:
    """A checkpoint that travels to a Ray worker as bytes, under the reference the user gave."""

    ref: str
    data: bytes

    def load(self) -> Any:
        """The model (fingerprint module re-inserted when the checkpoint has one), eval mode."""
        from trustflow.models.fingerprint.checkpoint import load_model

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.pt"
            path.write_bytes(self.data)
            try:
                return load_model(path)
            except InputError as exc:
                raise InputError(str(exc).replace(str(path), self.ref)) from None


def portable(store: ArtifactStore, ref: str) -> Blob:
    """The checkpoint ``ref`` names (see the module docstring); ``InputError`` naming ``ref``
    when it is malformed or absent."""
    from trustflow.models.vision.resolve import PortableModel

    scheme, _, rest = ref.partition(":")
    if scheme in (EMBED, ATTACK):
        run_id, _, name = rest.partition("/")
        if not run_id or not name or "/" in name:
            raise InputError(f"model {ref!r}: use {scheme}:<run id>/<name>")
        flow = names.FINGERPRINT_EMBED if scheme == EMBED else names.FINGERPRINT_ATTACK
        key = model_key(store, flow, run_id, name)
        try:
            return Blob(ref, store.read_bytes(key))
        except (FileNotFoundError, OSError):
            raise InputError(
                f"model {ref!r}: no checkpoint at {store.url}/runs/{flow}/{run_id}/models/{name}.pt"
            ) from None
    if scheme not in ("ckpt", "run"):
        raise InputError(
            f"model {ref!r}: use ckpt:PATH, run:<id>(/best|/final), embed:<run>/<name> or attack:<run>/<name>"
        )
    model = PortableModel.of(store, ref)
    return Blob(ref, model.blob)


def short_name(ref: str) -> str:
    """A file- and key-safe short name of a reference (descendant names start with it):
    a checkpoint's file stem, an ``embed:``/``attack:`` model's name in its run, a training
    run's ``<id>.<which>``."""
    scheme, _, rest = ref.partition(":")
    if scheme == "ckpt":
        tail = Path(rest).stem
    elif scheme in (EMBED, ATTACK):
        tail = rest.rpartition("/")[2]  # the name inside its run
    else:
        tail = rest.replace("/", ".")
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in tail)[:60] or "model"


# ---------------------------------------------------------------- fingerprints


def write_fingerprint_stage(store: Any, ref: StageRef, models: Sequence[tuple[str, Any]]) -> int:
    """The ``fingerprint`` stage (schema FINGERPRINT) of ``(name, fingerprinted model)`` pairs,
    keyed by (model, filter, channel, u, v), so a re-run adds no rows. Returns its row count."""
    import pyarrow as pa

    from trustflow.data.schemas import FINGERPRINT
    from trustflow.models.fingerprint.module import extract_fingerprint, fingerprint_rows

    tables = [
        pa.table(fingerprint_rows(name, extract_fingerprint(model)), schema=FINGERPRINT.schema)
        for name, model in models
    ]
    manifest = store.write_stage(
        ref, FINGERPRINT, pa.concat_tables(tables), FINGERPRINT_KEYS, {"models": [n for n, _ in models]}
    )
    return int(manifest.rows)


def _train_source(
    arch: str,
    dataset: str,
    image_size: int | None,
    limit: int | None,
    fingerprint: dict[str, Any],
    train: dict[str, Any],
) -> Any:
    """In-process training of one fingerprinted source (``workers=0`` of the embed flow)."""
    from trustflow.data.vision.datasets import load_dataset
    from trustflow.models.fingerprint.module import insert_fingerprint
    from trustflow.models.vision.spec import load_classifier
    from trustflow.tasks.provenance.train import train_classifier

    data = load_dataset(dataset, "train", image_size)
    if limit:
        data = data.subset(limit)
    model = load_classifier(
        arch, num_classes=data.num_classes, in_channels=data.in_channels, mean=data.mean, std=data.std
    )
    insert_fingerprint(model, fingerprint)
    train_classifier(model, data, **train)
    return model


@task(name="fingerprint-embed", task_run_name="embed-{run_id}", cache_policy=NO_CACHE)
def embed_task(
    spec: StoreSpec,
    run_id: str,
    sources: list[str],
    train: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Register the fingerprints of ``sources`` (references) in ``runs/fingerprint_embed/<run>/fingerprint``.

    With ``train`` (arch, dataset, image_size, limit, fingerprint, seeds, epochs, lr, ...),
    the sources named ``embed:<run>/s<seed>`` are first trained in this process, each with
    its own seed, and stored (an existing checkpoint is kept: a rerun trains nothing)."""
    from trustflow.models.fingerprint.checkpoint import save_model
    from trustflow.models.fingerprint.module import fingerprint_layers

    store = spec.open()
    refs = list(sources)
    if train:
        cfg = dict(train)
        for seed in cfg.pop("seeds"):
            name = f"s{seed}"
            key = model_key(store, names.FINGERPRINT_EMBED, run_id, name)
            refs.append(f"{EMBED}:{run_id}/{name}")
            if _exists(store, key):
                continue
            fp = {**cfg["fingerprint"], "seed": seed}
            steps: dict[str, Any] = {
                k: cfg[k] for k in ("epochs", "lr", "batch_size", "method", "max_steps") if k in cfg
            }
            model = _train_source(
                cfg["arch"], cfg["dataset"], cfg.get("image_size"), cfg.get("limit"), fp, {**steps, "seed": seed}
            )
            with tempfile.TemporaryDirectory() as tmp:
                path = save_model(Path(tmp) / "m.pt", model, cfg["arch"], {"seed": seed, "dataset": cfg["dataset"]})
                store.write_bytes_atomic(key, path.read_bytes())
    models = []
    for ref in refs:
        model = portable(store, ref).load()
        if not fingerprint_layers(model):
            raise InputError(f"model {ref!r} has no fingerprint module: train it with --fingerprint LAYER first")
        models.append((ref, model))
    rows = write_fingerprint_stage(store, StageRef(names.FINGERPRINT_EMBED, run_id, names.FINGERPRINT), models)
    return {"run_id": run_id, "sources": refs, "rows": rows}


def _exists(store: ArtifactStore, key: str) -> bool:
    import pyarrow.fs as pafs

    info = store.io("stat", lambda: store.fs.get_file_info(key), path=key)
    return bool(info.type == pafs.FileType.File)


def registered_fingerprints(store: ArtifactStore) -> dict[str, tuple[str, Any]]:
    """Every registered fingerprint: model reference → (embed run id, Fingerprint)."""
    import numpy as np

    from trustflow.models.fingerprint.module import Fingerprint

    out: dict[str, tuple[str, Any]] = {}
    for ref, _ in store.list_stages(names.FINGERPRINT_EMBED):
        if ref.stage != names.FINGERPRINT:
            continue
        table = store.read_table(ref).to_pandas()
        for model, g in table.groupby("model", sort=True):
            g = g.sort_values(["filter", "channel", "u", "v"])
            freqs = g[g["filter"].eq(0) & g["channel"].eq(0)][["u", "v"]].to_numpy(np.int64)
            d, c = int(g["filter"].max()) + 1, int(g["channel"].max()) + 1
            values = (g["real"].to_numpy() + 1j * g["imag"].to_numpy()).reshape(d, c, len(freqs))
            grid = (int(g["grid_m"].iloc[0]), int(g["grid_n"].iloc[0]))
            out[str(model)] = (ref.run_id, Fingerprint(str(g["layer"].iloc[0]), grid, freqs, values, "module"))
    return out


def closest_registered(
    store: ArtifactStore, model: Any, registered: Mapping[str, tuple[str, Any]] | None = None
) -> dict[str, Any] | None:
    """ρ of ``model`` against every registered fingerprint; the best match as
    ``{"source", "embed_run", "rho", "derived"}`` (``derived``: ρ above the default threshold
    0.5), or None when nothing is registered. A model without a module is read at each
    fingerprint's layer and grid (its plain conv), as the trace flow does."""
    from trustflow.models.fingerprint.module import extract_fingerprint
    from trustflow.tasks.provenance.verify import fingerprint_score

    best: dict[str, Any] | None = None
    registry = registered_fingerprints(store) if registered is None else registered
    for source, (run_id, fp) in sorted(registry.items()):
        try:
            mine = extract_fingerprint(model, fp.layer, fp.grid)
        except InputError:
            continue  # no such conv in this model: nothing to compare
        rho = fingerprint_score(fp, mine).rho
        if best is None or rho > best["rho"]:
            best = {"source": source, "embed_run": run_id, "rho": float(rho)}
    if best is not None:
        best["derived"] = best["rho"] > DEFAULT_THRESHOLDS["ours"]
    return best


# ---------------------------------------------------------------- attacks


def descendant_name(source: str, attack: str, seed: int) -> str:
    """The key of a descendant: readable prefix, digest of (source, attack spec, seed)."""
    from trustflow.registry import parse_spec

    return f"{short_name(source)}.{parse_spec(attack, 'attack').name}.{digest([source, attack, seed], 8)}"


def _attack_one(
    spec: StoreSpec, run_id: str, source: Blob, attack: str, seed: int, suspect: str, image_size: int | None
) -> None:
    """In a Ray worker: apply one attack, store the checkpoint, then the descendant's one-row part."""
    import pyarrow as pa
    import torch

    from trustflow.data.schemas import FINGERPRINT_DESCENDANTS
    from trustflow.models.fingerprint.checkpoint import save_model
    from trustflow.models.fingerprint.module import extract_fingerprint
    from trustflow.tasks.provenance.attacks.base import AttackContext, make_attack

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    store = spec.open()
    model = source.load()
    if image_size is None:  # the grid of the module (right for a layer before any downsampling)
        try:
            image_size = int(extract_fingerprint(model).grid[0])
        except InputError:
            image_size = None
    attacked: Any = make_attack(attack, seed=seed).apply(model, AttackContext(image_size=image_size))
    key = model_key(store, names.FINGERPRINT_ATTACK, run_id, suspect)
    with tempfile.TemporaryDirectory() as tmp:
        arch = str(getattr(model, "arch_spec", "small_cnn"))
        path = save_model(Path(tmp) / "m.pt", attacked, arch, {"source": source.ref, "attack": attack, "seed": seed})
        store.write_bytes_atomic(key, path.read_bytes())
    row = {
        "suspect": suspect,
        "source": source.ref,
        "attack": attack,
        "seed": seed,
        "checkpoint": key,
        "seconds": time.perf_counter() - t0,
    }
    writer = store.writer(
        StageRef(names.FINGERPRINT_ATTACK, run_id, names.DESCENDANTS), FINGERPRINT_DESCENDANTS, ["suspect"]
    )
    writer.write_part(pa.Table.from_pylist([row], schema=FINGERPRINT_DESCENDANTS.schema), part_id=suspect)


@task(name="fingerprint-attack", task_run_name="attack-{run_id}", cache_policy=NO_CACHE)
def attack_task(
    spec: StoreSpec,
    run_id: str,
    sources: list[str],
    attacks: list[str],
    seeds: list[int],
    image_size: int | None = None,
) -> list[dict[str, Any]]:
    """Every (source, attack, seed) descendant, made once; returns the stage's rows."""
    from trustflow.data.schemas import FINGERPRINT_DESCENDANTS
    from trustflow.infra.ray_runtime import ensure_ray
    from trustflow.tasks.provenance.attacks.base import OWNERSHIP_ATTACKS

    for a in attacks:
        OWNERSHIP_ATTACKS.resolve(a)  # a bad spec is one ConfigError before anything runs
    store = spec.open()
    ref = StageRef(names.FINGERPRINT_ATTACK, run_id, names.DESCENDANTS)
    writer = store.writer(ref, FINGERPRINT_DESCENDANTS, ["suspect"])
    done = set(writer.existing_keys().column("suspect").to_pylist())
    plan = [(s, a, seed, descendant_name(s, a, seed)) for s in sources for a in attacks for seed in seeds]
    todo = [p for p in plan if p[3] not in done]
    if todo:
        blobs = {s: portable(store, s) for s in {p[0] for p in todo}}
        ensure_ray(store.settings)
        calls = [(spec, run_id, blobs[s], a, seed, name, image_size) for s, a, seed, name in todo]
        ray_map(_attack_one, calls, "ownership attacks")
    if todo or store.manifest(ref) is None:
        writer.commit({"sources": sources, "attacks": attacks, "seeds": seeds})
    wanted = {p[3] for p in plan}
    rows = [r for r in store.read_table(ref).to_pylist() if r["suspect"] in wanted]
    return sorted(rows, key=lambda r: r["suspect"])


# ---------------------------------------------------------------- scoring and verdicts


def probe_batch(dataset: str, image_size: int | None, size: int, seed: int = 0) -> Any:
    """The fixed probe batch of the CKA baseline (test split, ``size`` images drawn with ``seed``)."""
    import numpy as np

    from trustflow.data.vision.datasets import load_dataset

    data = load_dataset(dataset, "test", image_size)
    idx = np.random.default_rng(seed).permutation(len(data))[:size]
    return np.ascontiguousarray(data.x[np.sort(idx)])


_SOURCE_CACHE: dict[tuple[str, str, str], Any] = {}  # per process (a Ray worker is reused across tasks)
_SOURCE_CACHE_SIZE = 32


def score_one(suspect: Blob, sources: Sequence[Blob], probe: Any) -> list[dict[str, Any]]:
    """Every score of one suspect against every source: (suspect, source, method, score) rows."""
    import numpy as np
    import torch

    from trustflow.tasks.provenance.train import match_channels
    from trustflow.tasks.provenance.verify import prepare, scores

    torch.set_num_threads(1)

    def probe_for(model: Any) -> torch.Tensor:
        x = np.array(probe, dtype=np.float32)
        channels = int(getattr(model, "in_channels", None) or x.shape[1])
        from trustflow.data.vision.datasets import ArrayDataset

        fake = ArrayDataset("probe", "test", x, np.zeros(len(x), np.int64), 1, (0.0,), (1.0,))
        return torch.from_numpy(match_channels(fake, channels))

    probe_key = hashlib.sha1(np.ascontiguousarray(probe).tobytes()).hexdigest()

    def prepared_source(blob: Blob) -> Any:
        # one worker scores many suspects against the same sources: load and prepare each once
        key = (blob.ref, hashlib.sha1(blob.data).hexdigest(), probe_key)
        if key not in _SOURCE_CACHE:
            if len(_SOURCE_CACHE) >= _SOURCE_CACHE_SIZE:
                _SOURCE_CACHE.pop(next(iter(_SOURCE_CACHE)))
            m = blob.load()
            _SOURCE_CACHE[key] = prepare(blob.ref, m, probe_for(m))
        return _SOURCE_CACHE[key]

    model = suspect.load()
    rows = []
    for src_blob in sources:
        src = prepared_source(src_blob)
        sus = prepare(suspect.ref, model, probe_for(model), src.fingerprint)
        for method, value in scores(src, sus).items():
            rows.append(
                {"suspect": suspect.ref, "source": src_blob.ref, "method": METHOD_NAMES[method], "score": float(value)}
            )
    return rows


@task(name="fingerprint-score", task_run_name="score-{run_id}", cache_policy=NO_CACHE)
def score_task(
    spec: StoreSpec,
    run_id: str,
    sources: list[str],
    suspects: list[str],
    probe_dataset: str = "fashion-mnist",
    probe_size: int = 128,
    image_size: int | None = None,
    use_ray: bool = True,
) -> list[dict[str, Any]]:
    """Scores of every suspect against every source by the three methods; a suspect already
    scored (all its rows present) is not recomputed."""
    import pyarrow as pa

    from trustflow.data.schemas import FINGERPRINT_SCORES
    from trustflow.infra.ray_runtime import ensure_ray

    store = spec.open()
    ref = StageRef(names.FINGERPRINT_TRACE, run_id, names.SCORES)
    writer = store.writer(ref, FINGERPRINT_SCORES, ["suspect", "source", "method"])
    existing = writer.existing_keys().to_pylist()
    have: dict[str, int] = {}
    for k in existing:
        if k["source"] in sources:
            have[k["suspect"]] = have.get(k["suspect"], 0) + 1
    need = len(sources) * len(METHOD_NAMES)
    todo = [s for s in suspects if have.get(s, 0) < need]
    if todo:
        blobs = [portable(store, s) for s in sources]
        probe = probe_batch(probe_dataset, image_size, probe_size)
        calls = [(portable(store, s), blobs, probe) for s in todo]
        if use_ray:
            ensure_ray(store.settings)
            parts = ray_map(score_one, calls, "fingerprint scores")
        else:
            parts = [score_one(*c) for c in calls]
        rows = [r for p in parts for r in p]
        table = writer.missing(pa.Table.from_pylist(rows, schema=FINGERPRINT_SCORES.schema))
        if table.num_rows:
            writer.write_part(table)
    if todo or store.manifest(ref) is None:
        writer.commit({"sources": sources, "probe": probe_dataset})
    wanted_s, wanted_src = set(suspects), set(sources)
    return [r for r in store.read_table(ref).to_pylist() if r["suspect"] in wanted_s and r["source"] in wanted_src]


def verdict_rows(
    scores: Sequence[Mapping[str, Any]], truth: Mapping[str, str | None], groups: Mapping[str, str]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Verdict rows per (suspect, method) and a summary per method (threshold, accuracy, AUC,
    ROC, per-group accuracy). ``truth`` holds the suspects whose truth is known (None: an
    independent model); the threshold is calibrated on them, or a default when none are known."""
    from trustflow.tasks.provenance.verify import trace

    rows: list[dict[str, Any]] = []
    summary: dict[str, dict[str, Any]] = {}
    for method in METHOD_NAMES.values():
        mrows = [r for r in scores if r["method"] == method]
        if not mrows:
            continue
        known = [
            {**{"suspect": r["suspect"], "source": r["source"]}, method: r["score"]}
            for r in mrows
            if r["suspect"] in truth
        ]
        threshold = DEFAULT_THRESHOLDS[method]
        info: dict[str, Any] = {
            "threshold": threshold,
            "accuracy": None,
            "auc": None,
            "fpr": [],
            "tpr": [],
            "per_group": {},
        }
        if known:
            result = trace(known, dict(truth), dict(groups), method)
            threshold = result.threshold
            info = {
                "threshold": threshold,
                "accuracy": result.accuracy,
                "auc": None if result.auc != result.auc else result.auc,  # NaN → None (JSON)
                "fpr": result.fpr,
                "tpr": result.tpr,
                "per_group": result.per_group,
            }
        summary[method] = info
        best: dict[str, tuple[str, float]] = {}
        for r in mrows:
            if r["suspect"] not in best or r["score"] > best[r["suspect"]][1]:
                best[r["suspect"]] = (r["source"], float(r["score"]))
        for suspect, (src, value) in sorted(best.items()):
            traced = src if value > threshold else None
            is_known = suspect in truth
            rows.append(
                {
                    "suspect": suspect,
                    "method": method,
                    "traced_to": traced,
                    "score": value,
                    "threshold": float(threshold),
                    "true_source": truth.get(suspect),
                    "known": is_known,
                    "correct": (traced == truth.get(suspect)) if is_known else None,
                    "group": groups.get(suspect, GIVEN),
                }
            )
    return rows, summary


@task(name="fingerprint-verdicts", task_run_name="verdicts-{run_id}", cache_policy=NO_CACHE)
def verdict_task(
    spec: StoreSpec,
    run_id: str,
    scores: list[dict[str, Any]],
    truth: dict[str, str | None],
    groups: dict[str, str],
    descendants: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The verdicts stage and the ρ-vs-learning-rate plot; returns the rows and the per-method summary."""
    import pyarrow as pa

    from trustflow.data.schemas import FINGERPRINT_VERDICTS
    from trustflow.tasks.provenance import plots

    store = spec.open()
    rows, summary = verdict_rows(scores, truth, groups)
    ref = StageRef(names.FINGERPRINT_TRACE, run_id, names.VERDICTS)
    table = pa.Table.from_pylist(rows, schema=FINGERPRINT_VERDICTS.schema)
    store.write_stage(ref, FINGERPRINT_VERDICTS, table, ["suspect", "method"], {"summary": summary})
    points = plots.rho_vs_lr_points(descendants or [], scores)
    if points:
        png = plots.rho_vs_lr(points)
        store.write_bytes_atomic(store.path("runs", names.FINGERPRINT_TRACE, run_id, "plots", plots.RHO_VS_LR), png)
    return {"verdicts": store.read_table(ref).to_pylist(), "summary": summary}


# ---------------------------------------------------------------- Prefect artifacts


def rho_table(scores: Sequence[Mapping[str, Any]], method: str = "ours") -> list[dict[str, Any]]:
    """One row per suspect, one column per source: the ``method`` score (ρ for ``ours``)."""
    table: dict[str, dict[str, Any]] = {}
    for r in scores:
        if r["method"] == method:
            table.setdefault(r["suspect"], {"suspect": r["suspect"]})[r["source"]] = round(float(r["score"]), 3)
    return [table[k] for k in sorted(table)]


def publish_embed(result: Mapping[str, Any]) -> None:
    """The registered sources as a markdown artifact of the flow run."""
    create_markdown_artifact(
        key="fingerprint-embed",
        markdown="\n".join(
            [
                f"# Registered fingerprints (run `{result['run_id']}`)",
                *[f"- `{s}`" for s in result["sources"]],
                f"{result['rows']} fingerprint rows in stage `{names.FINGERPRINT}`",
            ]
        ),
    )


def publish_trace(store: ArtifactStore, result: Mapping[str, Any]) -> None:
    """The ρ table and the verdicts as table artifacts, the per-method summary as markdown."""
    create_table_artifact(
        key="fingerprint-rho",
        table=rho_table(result["scores"]),
        description=f"fingerprint score ρ of each suspect against each source (run {result['run_id']})",
    )
    create_table_artifact(
        key="fingerprint-verdicts",
        table=[
            {k: r.get(k) for k in ("suspect", "method", "traced_to", "score", "threshold", "true_source", "correct")}
            for r in result["verdicts"]
        ],
        description="tracing verdicts per method",
    )
    lines = [f"# Provenance trace `{result['run_id']}`", "", "| method | threshold | tracing accuracy | ROC AUC |"]
    lines.append("|---|---|---|---|")
    for method, s in result["summary"].items():
        acc = "–" if s["accuracy"] is None else f"{s['accuracy']:.3f}"
        auc = "–" if s["auc"] is None else f"{s['auc']:.3f}"
        lines.append(f"| {method} | {s['threshold']:.3f} | {acc} | {auc} |")
    lines.append(f"\nplot: `{store.url}/runs/{names.FINGERPRINT_TRACE}/{result['run_id']}/plots/rho_vs_lr.png`")
    create_markdown_artifact(key="fingerprint-trace", markdown="\n".join(lines))
