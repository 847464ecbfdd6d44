"""S-Eval pipeline benchmarks (issue 3): flow overhead and CPU throughput of the defaults.

1. Pipeline overhead: responses for N prompts through the ``seval_evaluate`` flow (Prefect
   ephemeral + Ray actor pool + Parquet parts + manifest; refusal critic and metrics
   included) vs calling the same backend directly in a loop with the same batch size.
   Both arms include loading the model once. Goal: flow / direct <= 1.10.
2. Throughput of target generation on Ray actors: prompts/s and completion tokens/s with
   1 actor (all CPUs) vs 2 actors (half the CPUs each), same prompts.

The suite is the seed suite's 200 shortest prompts; a larger ``--prompts`` repeats them with
new ids and a " (r)" suffix (so no answer repeats). ``--max-tokens 1`` is the overhead's worst
case: the model's own work per prompt is smallest, the pipeline's is unchanged.

usage: benchmarks/seval_pipeline.py [--prompts 100] [--max-tokens 16] [--batch-size 8] [--model pkg:smollm2-135m] [--no-actors]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="tf-bench-seval-"))
(_TMP / "prefect").mkdir()
os.environ.update(
    {
        "PREFECT_HOME": str(_TMP / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "RAY_AUTH_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "TQDM_DISABLE": "1",
        "TRUSTFLOW_HOME": str(_TMP / "home"),
    }
)

import pyarrow as pa  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from trustflow import names  # noqa: E402
from trustflow.data.schemas import SEVAL_SUITE  # noqa: E402
from trustflow.data.store import ArtifactStore, StageRef  # noqa: E402
from trustflow.settings import load_settings  # noqa: E402

console = Console()
SHORTEST = 200  # prompts drawn from the seed suite (shortest first); larger runs repeat them


def suite_of(n: int) -> pa.Table:
    """The N shortest prompts of the seed suite and its attack variants (deterministic).

    Shortest, because on 2 CPU cores prompt prefill dominates: long attack templates
    (nested fiction, fabricated dialogues) would make each arm take many minutes.
    """
    from trustflow.tasks.seval.suite import seed_suite

    table = seed_suite(["zh", "en"], per_dimension=10, attacks=None, attacks_per_base=None, seed=0)
    lengths = pa.compute.utf8_length(table["prompt"])
    order = pa.compute.sort_indices(
        pa.table({"len": lengths, "uid": table["prompt_uid"]}), sort_keys=[("len", "ascending"), ("uid", "ascending")]
    )
    shortest = table.take(order.slice(0, min(n, SHORTEST)))
    if n <= shortest.num_rows:
        return shortest
    # more prompts than the short pool: repeat it, repeat r with ids "#r" and the prompt suffixed " (r)"
    pieces = []
    for r in range(-(-n // shortest.num_rows)):
        piece = shortest.slice(0, min(shortest.num_rows, n - r * shortest.num_rows))
        for name, suffix in (
            ("prompt_uid", f"#{r}"),
            ("prompt_id", f"#{r}"),
            ("base_id", f"#{r}"),
            ("prompt", f" ({r})"),
        ):
            i = piece.schema.get_field_index(name)
            piece = piece.set_column(i, name, pa.compute.binary_join_element_wise(piece[name], pa.scalar(suffix), ""))
        pieces.append(piece)
    return pa.concat_tables(pieces)


def direct(model: str, prompts: list[str], batch: int, max_tokens: int) -> tuple[float, int]:
    from trustflow.models.llm.base import ChatRequest
    from trustflow.models.llm.spec import load_backend

    t0 = time.perf_counter()
    backend = load_backend(model)
    tokens = 0
    for start in range(0, len(prompts), batch):
        reqs = [
            ChatRequest(messages=p, max_tokens=max_tokens, temperature=0.0, seed=0)
            for p in prompts[start : start + batch]
        ]
        tokens += sum(r.completion_tokens for r in backend.generate(reqs))
    backend.close()
    return time.perf_counter() - t0, tokens


def through_flow(model: str, suite: pa.Table, batch: int, max_tokens: int, run_id: str) -> tuple[float, int]:
    from trustflow.flows.seval_evaluate import seval_evaluate
    from trustflow.infra.prefect_runtime import prefect_runtime

    settings = load_settings(store_url=f"file://{_TMP / 'store'}")
    store = ArtifactStore(settings=settings)
    store.write_stage(
        StageRef(names.SEVAL_EVALUATE, run_id, names.SUITE), SEVAL_SUITE, suite, ["prompt_uid"], {"source": "bench"}
    )
    t0 = time.perf_counter()
    with prefect_runtime(settings):
        seval_evaluate(
            targets=[model], critic="refusal", max_tokens=max_tokens, batch_size=batch, actors=1, run_id=run_id
        )
    elapsed = time.perf_counter() - t0
    responses = store.read_table(StageRef(names.SEVAL_EVALUATE, run_id, names.RESPONSES))
    return elapsed, int(pa.compute.sum(responses["completion_tokens"]).as_py())


def actors_arm(model: str, suite: pa.Table, batch: int, max_tokens: int, actors: int) -> tuple[float, int]:
    import ray

    from trustflow.models.llm.base import GenParams
    from trustflow.tasks.seval.responses import commit_responses, generate_responses

    settings = load_settings(store_url=f"file://{_TMP / f'store-actors-{actors}'}")
    store = ArtifactStore(settings=settings)
    ref = StageRef("bench", f"actors-{actors}", "responses")
    cpus = float(int(ray.cluster_resources().get("CPU", 2)) // actors)
    t0 = time.perf_counter()
    generate_responses(
        store,
        ref,
        suite,
        model,
        GenParams(max_tokens=max_tokens, temperature=0.0, seed=0),
        batch_size=batch,
        num_actors=actors,
        num_cpus_per_actor=cpus,
    )
    elapsed = time.perf_counter() - t0
    written = commit_responses(store, ref, {})
    responses = store.read_table(ref)
    assert written.rows == suite.num_rows
    return elapsed, int(pa.compute.sum(responses["completion_tokens"]).as_py())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--model", default="pkg:smollm2-135m")
    ap.add_argument("--no-actors", action="store_true", help="only the flow-vs-direct overhead arms")
    args = ap.parse_args()
    suite = suite_of(args.prompts)
    prompts = suite["prompt"].to_pylist()
    console.print(
        f"{args.prompts} prompts, {args.max_tokens} new tokens each, batch {args.batch_size}, model {args.model}, {os.cpu_count()} CPUs"
    )

    d_s, d_tok = direct(args.model, prompts, args.batch_size, args.max_tokens)
    console.print(f"direct loop done in {d_s:.1f}s")
    f_s, f_tok = through_flow(args.model, suite, args.batch_size, args.max_tokens, "bench-overhead")
    console.print(f"flow done in {f_s:.1f}s")

    t1 = Table(title="Pipeline overhead: responses through the flow vs a direct loop (model load included in both)")
    for col in ("path", "seconds", "completion tokens", "ratio to direct"):
        t1.add_column(col, justify="right" if col != "path" else "left")
    t1.add_row("direct backend loop", f"{d_s:.1f}", str(d_tok), "1.00")
    t1.add_row("seval_evaluate flow (Prefect + Ray actor + store)", f"{f_s:.1f}", str(f_tok), f"{f_s / d_s:.2f}")
    console.print(t1)
    console.print("goal: flow / direct <= 1.10")
    if args.no_actors:
        return

    from trustflow.infra.ray_runtime import ensure_ray, shutdown_ray

    ensure_ray(load_settings())
    arms = {n: actors_arm(args.model, suite, args.batch_size, args.max_tokens, n) for n in (1, 2)}
    shutdown_ray()

    t2 = Table(title="Target generation throughput on Ray actors (same prompts)")
    for col in ("actors", "CPUs per actor", "seconds", "prompts/s", "tokens/s", "ratio to 1 actor"):
        t2.add_column(col, justify="right")
    base = arms[1][0]
    for n, (secs, toks) in arms.items():
        t2.add_row(
            str(n), str(2 // n), f"{secs:.1f}", f"{args.prompts / secs:.2f}", f"{toks / secs:.1f}", f"{base / secs:.2f}"
        )
    console.print(t2)


if __name__ == "__main__":
    main()
