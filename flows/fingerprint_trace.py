"""``fingerprint_attack`` and ``fingerprint_trace``: make descendants of sources with ownership
attacks, then trace suspects back to their sources by our fingerprint score ρ and the two
baselines (weight cosine, linear CKA).

Both compose the stages of ``tasks/provenance/stages.py`` (which documents what lands in
the store and the model references they accept) and publish their Prefect artifacts.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from trustflow import names
from trustflow.data.store import ArtifactStore
from trustflow.registry import parse_spec
from trustflow.settings import load_settings
from trustflow.tasks.provenance import stages
from trustflow.tasks.ray_parts import StoreSpec


def _store() -> ArtifactStore:
    settings = load_settings()
    return ArtifactStore(settings.effective_store_url, settings)


@flow(name=names.FINGERPRINT_ATTACK, flow_run_name="attack")
def fingerprint_attack(
    sources: list[str],
    attacks: list[str] = ["combined"],  # noqa: B006  (Prefect shows the defaults)
    seeds: list[int] = [0],  # noqa: B006
    image_size: int | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """One descendant per (source, attack spec, seed), each stored once; returns the rows with
    the reference (``attack:<run>/<suspect>``) of each."""
    run_id = run_id or f"attack-{stages.digest([sources, attacks, seeds, image_size])}"
    store = _store()
    rows = stages.attack_task(StoreSpec.of(store), run_id, sources, attacks, seeds, image_size)
    for r in rows:
        r["ref"] = f"{stages.ATTACK}:{run_id}/{r['suspect']}"
    return {"run_id": run_id, "descendants": rows}


@flow(name=names.FINGERPRINT_TRACE, flow_run_name="trace")
def fingerprint_trace(
    sources: list[str],
    suspects: list[str] = [],  # noqa: B006
    attacks: list[str] = [],  # noqa: B006
    seeds: list[int] = [0],  # noqa: B006
    independents: list[str] = [],  # noqa: B006
    probe_dataset: str = "fashion-mnist",
    probe_size: int = 128,
    image_size: int | None = None,
    use_ray: bool = True,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Trace every suspect to a source (or to none).

    Suspects: ``suspects`` (truth unknown), ``independents`` (known to derive from no
    source) and, for each ``attacks`` spec and seed, a descendant of each source (truth
    known). The threshold of each method is calibrated on the suspects of known truth."""
    params = [sources, suspects, attacks, seeds, independents, probe_dataset, probe_size, image_size]
    run_id = run_id or f"trace-{stages.digest(params)}"
    store = _store()
    spec = StoreSpec.of(store)
    truth: dict[str, str | None] = {s: None for s in independents}
    groups = {s: stages.INDEPENDENT for s in independents}
    descendants: list[dict[str, Any]] = []
    if attacks:
        descendants = stages.attack_task(spec, run_id, sources, attacks, seeds, image_size)
        for r in descendants:
            ref = f"{stages.ATTACK}:{run_id}/{r['suspect']}"
            r["ref"] = ref
            truth[ref] = r["source"]
            groups[ref] = parse_spec(r["attack"], "attack").name
    everyone = list(dict.fromkeys([*suspects, *independents, *(r["ref"] for r in descendants)]))
    scores = stages.score_task(spec, run_id, sources, everyone, probe_dataset, probe_size, image_size, use_ray)
    verdicts = stages.verdict_task(spec, run_id, scores, truth, groups, descendants)
    result = {
        "run_id": run_id,
        "sources": sources,
        "descendants": descendants,
        "scores": scores,
        "verdicts": verdicts["verdicts"],
        "summary": verdicts["summary"],
    }
    stages.publish_trace(store, result)
    return result
