"""trustflow vs inspect_ai on the same OpenAI-compatible endpoint: same prompts, same work.

usage: benchmarks/peer_inspect.py [--prompts 48] [--max-tokens 64] [--concurrency 4] [--runs 3]
           [--inspect-python /tmp/peer-venv/bin/python] [--make-venv] [--trustflow-path DIR]
           [--legacy] [--model pkg:smollm2-135m] [--json OUT]

One local ``transformers serve`` (started here on a free port, stopped in a ``finally``)
answers both clients. The prompts are S-Eval base prompts from ``../shared/data/s-eval/small``
(half zh, half en, spread over risk types). Per run:

- **trustflow**: ``python -m trustflow.cli.main seval run --targets openai:… --critic refusal
  --concurrency C --max-tokens N`` in a fresh process, the suite stage written beforehand
  under the run id (so exactly these prompts); everything the user waits for counts (Prefect,
  judging with the cheap refusal critic, metrics). ``--legacy`` drives a checkout without
  ``--concurrency`` (its only knob was ``--batch-size C``), for before/after figures;
  ``--trustflow-path`` is the folder put on PYTHONPATH (the parent of a ``trustflow`` checkout).
- **inspect_ai**: ``inspect eval`` of a one-line task (``generate()``, no scorer) with
  ``--max-connections C --max-tokens N --temperature 0 -M responses_api=false`` (chat
  completions, the API ``transformers serve`` implements; the default Responses API fails on
  it), from its own venv (inspect_ai and
  this project's pins do not share one): ``--inspect-python`` names that venv's python;
  ``--make-venv`` creates it there first (``python -m venv`` + ``pip install inspect-ai openai``).

Runs alternate (trustflow first on even runs, inspect first on odd ones) after one untimed
warm-up of each on 2 prompts. Measured: wall time; client CPU-s and peak RSS (the whole
client process tree, sampled every 0.2 s: Ray and Prefect helpers included); server CPU-s
(the server process and its children); answers per prompt, compared text for text.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_monitor import OtherLoad  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_SEVAL = REPO.parent / "shared" / "data" / "s-eval" / "small"
console = Console()

INSPECT_TASK = """
from inspect_ai import Task, task
from inspect_ai.dataset import json_dataset
from inspect_ai.solver import generate

@task
def peer():
    return Task(dataset=json_dataset({path!r}), solver=generate())
"""

INSPECT_DUMP = """
import json, sys
from inspect_ai.log import list_eval_logs, read_eval_log
log = read_eval_log(list_eval_logs(sys.argv[1])[0])
out = {str(s.id): (s.output.completion if s.output else None) for s in (log.samples or [])}
print(json.dumps({"status": log.status, "answers": out}))
"""


def base_prompts(n: int) -> list[dict[str, str]]:
    """``n`` S-Eval base prompts, half zh and half en, round-robin over risk types (deterministic)."""
    rows: list[dict[str, str]] = []
    for lang, k in (("zh", n // 2), ("en", n - n // 2)):
        name = f"S-Eval_base_risk_{lang}_small.jsonl"
        with zipfile.ZipFile(SHARED_SEVAL / f"{name}.zip") as z:
            items = [json.loads(line) for line in z.open(name).read().decode().splitlines() if line.strip()]
        by_type: dict[str, list[dict]] = {}
        for item in sorted(items, key=lambda x: x["traceid"]):
            by_type.setdefault(item["risk_type"], []).append(item)
        picked: list[dict] = []
        while len(picked) < k:
            for items_ in by_type.values():
                if items_ and len(picked) < k:
                    picked.append(items_.pop(0))
        rows += [
            {"prompt_id": p["traceid"], "lang": lang, "risk_type": p["risk_type"], "prompt": p["prompt"]}
            for p in picked
        ]
    return rows


def suite_table(prompts: list[dict[str, str]]) -> pa.Table:
    from trustflow.data.schemas import SEVAL_SUITE

    return pa.Table.from_pylist(
        [
            {
                "prompt_uid": f"base_risk:{p['lang']}:{p['prompt_id']}",
                "prompt_id": p["prompt_id"],
                "set": "base_risk",
                "attack": None,
                "base_id": p["prompt_id"],
                "lang": p["lang"],
                "dimension": p["risk_type"],
                "prompt": p["prompt"],
                "source": "peer-benchmark",
            }
            for p in prompts
        ],
        schema=SEVAL_SUITE.schema,
    )


class TreeMeter:
    """CPU-s and peak RSS of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.cpu: dict[tuple[int, float], float] = {}
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        rss = 0
        for p in procs:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    self.cpu[(p.pid, p.create_time())] = t.user + t.system
                    rss += p.memory_info().rss
            except psutil.Error:
                continue
        self.peak_rss = max(self.peak_rss, rss)

    def stop(self) -> tuple[float, int]:
        self._stop.set()
        self._thread.join()
        return sum(self.cpu.values()), self.peak_rss


def server_cpu(pid: int) -> float:
    p = psutil.Process(pid)
    total = sum(p.cpu_times()[:2])
    for child in p.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return total


def run_measured(
    argv: list[str], env: dict[str, str], server_pid: int, log: Path, cwd: Path | None = None
) -> dict[str, Any]:
    s0 = server_cpu(server_pid)
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        meter = TreeMeter(proc.pid)
        rc = proc.wait()
    wall = time.perf_counter() - t0
    cpu, rss = meter.stop()
    if rc != 0:
        raise SystemExit(f"{argv[0]} … exited {rc}; see {log}:\n{log.read_text()[-3000:]}")
    return {
        "wall_s": wall,
        "client_cpu_s": cpu,
        "client_rss_mb": rss / 2**20,
        "server_cpu_s": server_cpu(server_pid) - s0,
    }


class Trustflow:
    name = "trustflow"

    def __init__(self, work: Path, spec: str, args: argparse.Namespace) -> None:
        self.work, self.spec, self.args = work, spec, args
        self.home = work / "tf-home"
        self.env = {
            **os.environ,
            "TRUSTFLOW_HOME": str(self.home),
            "TRUSTFLOW_STORE_URL": f"file://{self.home / 'store'}",
            "PYTHONPATH": args.trustflow_path,
            "HF_HUB_OFFLINE": "1",
        }
        self.env.pop("PREFECT_HOME", None)
        self.env.pop("PREFECT_API_URL", None)
        self.n = 0

    def run(self, prompts: list[dict[str, str]], server_pid: int) -> dict[str, Any]:
        from trustflow import names
        from trustflow.data.schemas import SEVAL_SUITE
        from trustflow.data.store import ArtifactStore, StageRef
        from trustflow.settings import load_settings

        self.n += 1
        run_id = f"peer-{os.getpid()}-{self.n}"
        settings = load_settings(home=self.home, store_url=f"file://{self.home / 'store'}")
        store = ArtifactStore(settings=settings)
        store.write_stage(
            StageRef(names.SEVAL_EVALUATE, run_id, names.SUITE),
            SEVAL_SUITE,
            suite_table(prompts),
            ["prompt_uid"],
            {"source": "peer-benchmark", "langs": ["zh", "en"], "seed": 0},
        )
        knob = (
            ["--batch-size", str(self.args.concurrency)]
            if self.args.legacy
            else ["--concurrency", str(self.args.concurrency)]
        )
        argv = [
            sys.executable, "-m", "trustflow.cli.main", "seval", "run", "--targets", self.spec, "--critic", "refusal",
            "--max-tokens", str(self.args.max_tokens), *knob, "--run-id", run_id,
        ]  # fmt: skip
        stats = run_measured(argv, self.env, server_pid, self.work / f"trustflow-{self.n}.log")
        table = store.read_table(StageRef(names.SEVAL_EVALUATE, run_id, names.RESPONSES))
        rows = table.to_pylist()
        stats["answers"] = {r["prompt"]: r["response"] for r in rows}
        stats["errors"] = sum(1 for r in rows if r["error"])
        return stats


class Inspect:
    name = "inspect_ai"

    def __init__(self, work: Path, base_url: str, served: str, args: argparse.Namespace) -> None:
        self.work, self.base_url, self.served, self.args = work, base_url, served, args
        self.python = args.inspect_python
        self.env = {**os.environ, "OPENAI_API_KEY": "local", "INSPECT_LOG_LEVEL": "warning", "HF_HUB_OFFLINE": "1"}
        self.env.pop("PYTHONPATH", None)
        self.n = 0

    def run(self, prompts: list[dict[str, str]], server_pid: int) -> dict[str, Any]:
        self.n += 1
        d = self.work / f"inspect-{self.n}"
        d.mkdir()
        data = d / "prompts.jsonl"
        data.write_text("".join(json.dumps({"id": str(i), "input": p["prompt"]}) + "\n" for i, p in enumerate(prompts)))
        task = d / "peer_task.py"
        task.write_text(INSPECT_TASK.format(path=str(data)))
        argv = [
            str(Path(self.python).parent / "inspect"), "eval", task.name, "--model", f"openai/{self.served}",
            "-M", "responses_api=false", "--model-base-url", self.base_url, "--max-connections", str(self.args.concurrency),
            "--max-tokens", str(self.args.max_tokens), "--temperature", "0", "--log-dir", str(d / "logs"),
            "--display", "none",
        ]  # fmt: skip
        stats = run_measured(argv, self.env, server_pid, d / "run.log", cwd=d)  # it wants a relative task path
        dump = subprocess.run(
            [self.python, "-c", INSPECT_DUMP, str(d / "logs")], env=self.env, capture_output=True, text=True, check=True
        )
        result = json.loads(dump.stdout)
        answers = result["answers"]
        stats["answers"] = {p["prompt"]: answers.get(str(i)) for i, p in enumerate(prompts)}
        stats["errors"] = sum(1 for v in stats["answers"].values() if v is None) + (result["status"] != "success")
        return stats


def make_venv(python: str) -> None:
    venv = Path(python).parent.parent
    console.print(f"creating the inspect_ai venv in {venv} …")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "inspect-ai", "openai"], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--model", default="pkg:smollm2-135m", help="What transformers serve serves (hf: or pkg: spec).")
    ap.add_argument("--inspect-python", default="/tmp/peer-venv/bin/python")
    ap.add_argument("--make-venv", action="store_true", help="Create the inspect_ai venv at --inspect-python first.")
    ap.add_argument("--trustflow-path", default=str(REPO.parent), help="PYTHONPATH for the trustflow arm.")
    ap.add_argument("--legacy", action="store_true", help="The trustflow arm has no --concurrency: use --batch-size.")
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="Work in this folder and keep it (logs, answers).")
    ap.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = ap.parse_args()
    if not Path(args.inspect_python).is_file():
        if not args.make_venv:
            raise SystemExit(f"{args.inspect_python} not found: pass --make-venv to create it, or --inspect-python")
        make_venv(args.inspect_python)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from trustflow.models.llm.serve import LLMServer

    prompts = base_prompts(args.prompts)
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp, OtherLoad() as load:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        server = LLMServer(work / "llm-server")
        status = server.up(args.model, "transformers")
        try:
            pid = int(status["pid"])  # type: ignore[call-overload]
            spec = str(status["spec"])
            base_url = str(status["base_url"])
            served = spec.rpartition("#")[2]
            console.print(
                f"server {spec} (pid {pid}); {len(prompts)} prompts, max_tokens {args.max_tokens}, concurrency {args.concurrency}"
            )
            arms = [Trustflow(work, spec, args), Inspect(work, base_url, served, args)]
            if not args.no_warmup:
                for arm in arms:
                    arm.run(prompts[:1] + prompts[-1:], pid)
            results: dict[str, list[dict[str, Any]]] = {arm.name: [] for arm in arms}
            for i in range(args.runs):
                for arm in arms if i % 2 == 0 else arms[::-1]:
                    r = arm.run(prompts, pid)
                    results[arm.name].append(r)
                    console.print(
                        f"run {i + 1} {arm.name}: {r['wall_s']:.1f} s, client {r['client_cpu_s']:.1f} CPU-s / "
                        f"{r['client_rss_mb']:.0f} MB, server {r['server_cpu_s']:.1f} CPU-s, "
                        f"{len(r['answers'])} answers, {r['errors']} errors"
                    )
        finally:
            server.down()
    report(results, prompts, args, load)


def report(
    results: dict[str, list[dict[str, Any]]], prompts: list[dict[str, str]], args: argparse.Namespace, load: OtherLoad
) -> None:
    med = {
        name: {
            k: statistics.median(r[k] for r in runs)
            for k in ("wall_s", "client_cpu_s", "client_rss_mb", "server_cpu_s")
        }
        for name, runs in results.items()
    }
    table = Table(
        title=f"{len(prompts)} prompts, max_tokens {args.max_tokens}, concurrency {args.concurrency}, median of {args.runs}"
    )
    for col in ("client", "wall s", "runs (s)", "client CPU-s", "client peak RSS MB", "server CPU-s"):
        table.add_column(col, justify="left" if col == "client" else "right")
    for name, runs in results.items():
        m = med[name]
        table.add_row(
            name, f"{m['wall_s']:.1f}", " ".join(f"{r['wall_s']:.0f}" for r in runs), f"{m['client_cpu_s']:.1f}",
            f"{m['client_rss_mb']:.0f}", f"{m['server_cpu_s']:.1f}",
        )  # fmt: skip
    console.print(table)
    ratio = med["trustflow"]["wall_s"] / med["inspect_ai"]["wall_s"]
    tf, ins = results["trustflow"], results["inspect_ai"]
    same = [
        sum(1 for p in prompts if a["answers"].get(p["prompt"]) == b["answers"].get(p["prompt"]))
        for a, b in zip(tf, ins, strict=True)
    ]
    console.print(f"wall-time ratio trustflow / inspect_ai: {ratio:.2f}× (goal ≤ 1.1×)")
    console.print(f"identical answers per run (of {len(prompts)}): {same}")
    for p in prompts:
        a, b = tf[-1]["answers"].get(p["prompt"]), ins[-1]["answers"].get(p["prompt"])
        if a != b:
            console.print(f"first difference, prompt {p['prompt'][:60]!r}:\n  trustflow {a!r}\n  inspect   {b!r}")
            break
    console.print(load.summary())
    if args.json:
        slim = {k: [{kk: vv for kk, vv in r.items() if kk != "answers"} for r in v] for k, v in results.items()}
        args.json.write_text(json.dumps({"runs": slim, "median": med, "ratio": ratio, "identical": same}, indent=2))


if __name__ == "__main__":
    main()
