"""In-process vLLM engines inside Ray actors (GPU only).

vLLM cannot share trustflow's venv (it pins its own torch and fastapi), so each replica is a
Ray actor whose ``runtime_env`` runs it with a *separate* vLLM venv's interpreter
(``py_executable``; that venv needs the same ``ray`` version). The actor class is defined
inside a function so Ray ships it by value: the vLLM venv never imports trustflow.

On a machine without CUDA (or without a vLLM venv), constructing the backend raises
``LLMError`` explaining the alternative: ``vllm serve`` on a GPU host + an ``openai:`` spec.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from pathlib import Path
from typing import Any

from trustflow.models.llm.base import ChatBackend, ChatRequest, ChatResult, LLMError, TokenLogprob, TopLogprob

SERVE_HINT = (
    "run `vllm serve MODEL --host 127.0.0.1 --port 8000` in its own venv on a GPU machine "
    "(or `trustflow llm serve SPEC --engine vllm`) and use the spec openai:http://127.0.0.1:8000/v1#MODEL"
)


def vllm_prerequisites(vllm_python: str | None, ray_address: str | None) -> list[str]:
    """Why the in-process engine cannot run here (empty list: it can)."""
    problems = []
    if vllm_python:
        if not (Path(vllm_python).is_file() and os.access(vllm_python, os.X_OK)):
            problems.append(f"vLLM interpreter {vllm_python} is not an executable file")
    elif importlib.util.find_spec("vllm") is None:
        problems.append("no vLLM venv (set TRUSTFLOW_VLLM_PYTHON=/path/to/vllm-venv/bin/python)")
    if ray_address is None:  # a local Ray: this machine needs the GPUs
        try:
            import torch

            has_cuda = torch.cuda.is_available()
        except Exception:
            has_cuda = False
        if not has_cuda:
            problems.append("no CUDA GPU on this machine")
    return problems


def _replica_class() -> type:
    class VLLMReplica:  # runs in the vLLM venv: plain dicts in and out, no trustflow imports
        def __init__(self, model: str, engine_kwargs: dict) -> None:
            from vllm import LLM

            self.llm = LLM(model=model, **engine_kwargs)

        def generate(self, items: list[dict]) -> list[dict]:
            from vllm import SamplingParams

            params = [
                SamplingParams(
                    max_tokens=it["max_tokens"],
                    temperature=it["temperature"],
                    top_p=it["top_p"],
                    seed=it["seed"],
                    stop=list(it["stop"] or []) or None,
                    logprobs=(max(1, it["top_logprobs"]) if it["logprobs"] else None),
                )
                for it in items
            ]
            outs = self.llm.chat([it["messages"] for it in items], params, use_tqdm=False)
            results = []
            for it, out in zip(items, outs, strict=True):
                comp = out.outputs[0]
                lps = None
                if it["logprobs"] and comp.logprobs:
                    lps = []
                    for tok_id, step in zip(
                        comp.token_ids, comp.logprobs, strict=False
                    ):  # one step per token; never more
                        chosen = step.get(tok_id)
                        top = sorted(
                            ((lp.decoded_token or "", lp.logprob, lp.rank or 0) for lp in step.values()),
                            key=lambda x: x[2],
                        )
                        lps.append(
                            {
                                "token": chosen.decoded_token if chosen else "",
                                "logprob": chosen.logprob if chosen else float("nan"),
                                "top": [(t, lp) for t, lp, _ in top[: it["top_logprobs"]]],
                            }
                        )
                results.append(
                    {
                        "text": comp.text,
                        "finish_reason": comp.finish_reason,
                        "prompt_tokens": len(out.prompt_token_ids or []),
                        "completion_tokens": len(comp.token_ids),
                        "logprobs": lps,
                    }
                )
            return results

    return VLLMReplica


class VLLMBackend(ChatBackend):
    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        num_gpus: float = 1.0,
        replicas: int = 1,
        vllm_python: str | None = None,
        engine_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from trustflow.settings import load_settings

        settings = load_settings()
        vllm_python = vllm_python or os.environ.get("TRUSTFLOW_VLLM_PYTHON")
        problems = vllm_prerequisites(vllm_python, settings.ray_address)
        if problems:
            raise LLMError(
                f"vllm:{model}: the in-process vLLM engine cannot run here ({'; '.join(problems)}); {SERVE_HINT}"
            )
        import ray

        from trustflow.infra.ray_runtime import ensure_ray

        ensure_ray(settings)
        gpus = ray.cluster_resources().get("GPU", 0.0)
        if gpus < num_gpus * replicas:
            raise LLMError(
                f"vllm:{model}: needs {num_gpus * replicas:g} GPUs in the Ray cluster, it has {gpus:g}; {SERVE_HINT}"
            )
        options: dict[str, Any] = {"num_gpus": num_gpus}
        if vllm_python:
            options["runtime_env"] = {"py_executable": vllm_python}
        actor_cls: Any = ray.remote(_replica_class()).options(**options)
        self.name = model
        self._ray = ray
        self._replicas = [actor_cls.remote(model, dict(engine_kwargs or {})) for _ in range(max(1, replicas))]

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        items = [{"messages": r.message_dicts(), **r.params().model_dump()} for r in requests]
        shards = [list(range(k, len(items), len(self._replicas))) for k in range(len(self._replicas))]
        t0 = time.perf_counter()
        refs = [
            (shard, rep.generate.remote([items[i] for i in shard]))
            for rep, shard in zip(self._replicas, shards, strict=True)
            if shard
        ]
        results: list[ChatResult | None] = [None] * len(requests)
        for shard, ref in refs:
            try:
                outs = self._ray.get(ref)
                wall = time.perf_counter() - t0
                for i, out in zip(shard, outs, strict=True):
                    lps = out.pop("logprobs")
                    results[i] = ChatResult(
                        **out,
                        latency_s=wall,
                        id=requests[i].id,
                        model=self.name,
                        logprobs=None
                        if lps is None
                        else [
                            TokenLogprob(
                                token=x["token"],
                                logprob=x["logprob"],
                                top=[TopLogprob(token=t, logprob=v) for t, v in x["top"]],
                            )
                            for x in lps
                        ],
                    )
            except Exception as exc:  # one replica failing loses only its shard
                for i in shard:
                    results[i] = ChatResult.failed(
                        f"{type(exc).__name__}: {exc}", requests[i], time.perf_counter() - t0, self.name
                    )
        return [
            r if r is not None else ChatResult.failed("not generated", q)
            for r, q in zip(results, requests, strict=True)
        ]

    def close(self) -> None:
        for actor in getattr(self, "_replicas", []):
            with contextlib.suppress(Exception):  # an actor that is already gone
                self._ray.kill(actor)
        self._replicas = []
