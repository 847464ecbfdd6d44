"""Triage viewer on a large run (issue 21): first page and filter latency over the HTTP API.

Builds a synthetic S-Eval run (default 220,000 verdicts: responses and judgements stages in
the real schemas, split into parts as a flow writes them) in a temporary ``file://`` store,
starts the viewer's server on 127.0.0.1 and times, as a browser would see them:

- **first page**: ``GET /`` (the page with its first 50 rows inline: the first paint);
- **filters**: ``GET /api/rows`` with one facet, several facets, verdict + score range,
  an attack, a text search (scans every prompt and response), a sort by model and a deep page;
- **export**: the rows of one filter as JSONL.

Baseline, measured in the same run: what a viewer without server-side filtering would do
per query: read the whole run (both stages, every column) with pandas, join, filter and take
the page. Goal: every viewer query < 1 s; the table prints each time and its ratio to that.

usage: benchmarks/viewer.py [--rows 220000] [--parts 8] [--repeat 5]
"""

from __future__ import annotations

import argparse
import functools
import http.client
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
from load_monitor import OtherLoad
from rich.console import Console
from rich.table import Table

from trustflow import names
from trustflow.data.schemas import SEVAL_JUDGEMENTS, SEVAL_RESPONSES
from trustflow.data.store import ArtifactStore, StageRef
from trustflow.settings import load_settings
from trustflow.tasks.seval.judging import JUDGEMENT_KEYS
from trustflow.tasks.seval.viewer import open_run
from trustflow.tasks.seval.viewer_server import start_server

RUN = "seval-bench-viewer"
MODELS = [f"hf:org/model-{i}" for i in range(6)]
LANGS = ["en", "zh"]
DIMENSIONS = [f"dim-{i:02d}" for i in range(8)]
ATTACKS = [None, "role_play", "base64", "refusal_suppression", "few_shot", "translation"]
WORDS = [
    "the",
    "model",
    "answered",
    "that",
    "a",
    "person",
    "could",
    "try",
    "to",
    "obtain",
    "access",
    "without",
    "permission",
    "but",
    "it",
    "also",
    "noted",
    "legal",
    "risks",
    "and",
    "suggested",
    "safer",
    "alternatives",
    "such",
    "as",
    "asking",
    "an",
    "expert",
    "or",
    "reading",
    "the",
    "manual",
    "first",
    "lock",
    "network",
    "account",
    "password",
    "chemical",
    "weapon",
    "fraud",
    "privacy",
    "health",
    "loan",
    "stock",
    "rumour",
    "insult",
]
console = Console(width=150)


def _texts(rng: np.random.Generator, n: int, words: int) -> list[str]:
    vocab = np.array(WORDS)
    picks = vocab[rng.integers(0, len(vocab), size=(n, words))]
    return [" ".join(row) for row in picks]


def build_run(store: ArtifactStore, rows: int, parts: int, seed: int = 21) -> None:
    """Write a synthetic run of ``rows`` verdicts (one critic) in ``parts`` parts per stage."""
    rng = np.random.default_rng(seed)
    rid = np.array([f"r{i:08d}" for i in range(rows)])
    model = np.array(MODELS)[rng.integers(0, len(MODELS), rows)]
    lang = np.array(LANGS)[rng.integers(0, len(LANGS), rows)]
    dim = np.array(DIMENSIONS)[rng.integers(0, len(DIMENSIONS), rows)]
    attack_idx = rng.integers(0, len(ATTACKS), rows)
    attack = [ATTACKS[i] for i in attack_idx]
    score = rng.random(rows).astype(np.float32)
    error = rng.random(rows) < 0.01
    prompts = _texts(rng, rows, 25)
    responses = _texts(rng, rows, 70)
    rwriter = store.writer(StageRef(names.SEVAL_EVALUATE, RUN, names.RESPONSES), SEVAL_RESPONSES, ["response_id"])
    jwriter = store.writer(StageRef(names.SEVAL_EVALUATE, RUN, names.JUDGEMENTS), SEVAL_JUDGEMENTS, JUDGEMENT_KEYS)
    for chunk in np.array_split(np.arange(rows), parts):
        lo, hi = int(chunk[0]), int(chunk[-1]) + 1
        common = {
            "response_id": rid[lo:hi].tolist(),
            "model": model[lo:hi].tolist(),
            "prompt_uid": [f"base_risk:{lg}:{r}" for lg, r in zip(lang[lo:hi], rid[lo:hi], strict=True)],
            "set": ["base_risk" if a is None else "attack" for a in attack[lo:hi]],
            "attack": attack[lo:hi],
            "base_id": rid[lo:hi].tolist(),
            "lang": lang[lo:hi].tolist(),
            "dimension": dim[lo:hi].tolist(),
        }
        n = hi - lo
        rwriter.write_part(
            pa.table(
                {
                    **common,
                    "gen_config_hash": ["g"] * n,
                    "prompt": prompts[lo:hi],
                    "response": responses[lo:hi],
                    "finish_reason": ["stop"] * n,
                    "prompt_tokens": pa.array(np.full(n, 30), pa.int32()),
                    "completion_tokens": pa.array(np.full(n, 90), pa.int32()),
                    "latency_s": pa.array(np.full(n, 0.5, np.float32)),
                    "error": pa.nulls(n, pa.string()),
                    "cost_usd": pa.nulls(n, pa.float64()),
                },
                schema=SEVAL_RESPONSES.schema,
            )
        )
        err = error[lo:hi]
        sc = score[lo:hi]
        unsafe = [None if e else bool(s >= 0.5) for e, s in zip(err, sc, strict=True)]
        jwriter.write_part(
            pa.table(
                {
                    **common,
                    "critic_id": ["critic:bench"] * n,
                    "critic_prompt_hash": ["h"] * n,
                    "risk_score": pa.array(
                        [None if e else float(s) for e, s in zip(err, sc, strict=True)], pa.float32()
                    ),
                    "unsafe": pa.array(unsafe, pa.bool_()),
                    "risk_tags": [
                        [f"{d}.leaf-{k % 3}"] if (not e and s >= 0.5) else []
                        for k, (d, e, s) in enumerate(zip(dim[lo:hi], err, sc, strict=True))
                    ],
                    "explanation": [""] * n,
                    "raw_output": [""] * n,
                    "judge_error": ["timeout" if e else None for e in err],
                    "risk_tag_scores": pa.nulls(n, pa.list_(pa.float32())),
                    "tagger": pa.nulls(n, pa.string()),
                    "rationale": [f"rationale {i}" if s > 0.9 else None for i, s in enumerate(sc)],
                    "rationale_model": pa.nulls(n, pa.string()),
                    "rationale_error": pa.nulls(n, pa.string()),
                },
                schema=SEVAL_JUDGEMENTS.schema,
            )
        )
    rwriter.commit({})
    jwriter.commit({})


def _get(url: str, path: str) -> int:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status} {body[:300]!r}")
    return len(body)


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), max(samples)


def pandas_baseline(store: ArtifactStore) -> None:
    """A viewer without server-side filtering: the whole run into pandas, then one filter and page."""
    import pandas as pd

    judged = store.read_table(StageRef(names.SEVAL_EVALUATE, RUN, names.JUDGEMENTS)).to_pandas()
    text = store.read_table(StageRef(names.SEVAL_EVALUATE, RUN, names.RESPONSES)).to_pandas()
    joined = judged.merge(text[["response_id", "prompt", "response"]], on="response_id")
    page = joined[(joined["model"] == MODELS[1]) & (joined["lang"] == "zh")].sort_values("risk_score").head(50)
    assert isinstance(page, pd.DataFrame) and len(page) == 50


QUERIES = [
    ("first page (GET /, 50 rows inline)", "/"),
    ("filter: model", f"/api/rows?model={MODELS[1]}"),
    ("filter: model + lang + dimension", f"/api/rows?model={MODELS[2]}&lang=zh&dimension={DIMENSIONS[3]}"),
    ("filter: verdict unsafe, score 0.8-0.95", "/api/rows?verdict=unsafe&score_min=0.8&score_max=0.95"),
    ("filter: attack + judge error", "/api/rows?attack=base64&judge_error=true"),
    ("text search (every prompt+response)", "/api/rows?q=weapon%20fraud"),
    ("filter: risk tag (list column)", f"/api/rows?tag={DIMENSIONS[1]}.leaf-2"),
    ("sort by model, page 200", "/api/rows?sort=model&order=asc&page=200&page_size=100"),
    ("export JSONL (model + lang: ~18k rows)", f"/api/export?format=jsonl&model={MODELS[0]}&lang=en"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=220_000)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tf-bench-viewer-") as tmp:
        store = ArtifactStore(f"file://{Path(tmp) / 'store'}", load_settings())
        t0 = time.perf_counter()
        build_run(store, args.rows, args.parts)
        console.print(f"built a {args.rows:,}-row run in {args.parts} parts in {time.perf_counter() - t0:.1f} s")
        with OtherLoad() as load:
            t0 = time.perf_counter()
            view = open_run(store, RUN)
            open_s = time.perf_counter() - t0
            base_med, base_max = _time(lambda: pandas_baseline(store), max(2, args.repeat // 2))
            server, thread = start_server(view, 0)
            results = []
            try:
                for label, path in QUERIES:
                    size = _get(server.url, path)  # warm once (page cache), then measure
                    med, worst = _time(functools.partial(_get, server.url, path), args.repeat)
                    results.append((label, med, worst, size))
            finally:
                server.shutdown()
                server.server_close()
                thread.join(5)
        table = Table(title=f"viewer over {args.rows:,} verdicts (median of {args.repeat}; goal < 1 s)")
        for col in ("query", "median s", "max s", "bytes", "× faster than pandas baseline", "< 1 s"):
            table.add_column(col, justify="left" if col == "query" else "right")
        table.add_row("open run (facets, once per server)", f"{open_s:.3f}", "", "", "", "")
        for label, med, worst, size in results:
            ok = "yes" if worst < 1.0 else ("export" if label.startswith("export") else "NO")
            table.add_row(label, f"{med:.3f}", f"{worst:.3f}", f"{size:,}", f"{base_med / med:.1f}", ok)
        table.add_row("baseline: pandas full read + filter + page", f"{base_med:.3f}", f"{base_max:.3f}", "", "1.0", "")
        console.print(table)
        console.print(load.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
