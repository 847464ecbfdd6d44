"""In-process transformers backend (CPU by default): GGUF or a safetensors directory.

Batching: requests are grouped by compatible parameters (max_tokens, temperature, top_p,
stop, logprobs) and each group runs as left-padded micro-batches of ``batch_size``. Greedy
requests (temperature 0) batch freely. A *sampled* request that carries a ``seed`` runs in a
batch of its own after ``torch.manual_seed(seed)``, so its reply depends only on the request,
never on what it was batched with. ``latency_s`` of a result is its micro-batch's wall time.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, cast

from trustflow.errors import ConfigError
from trustflow.models.llm.base import ChatBackend, ChatRequest, ChatResult, LLMError, TokenLogprob, TopLogprob

_FALLBACK_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


class TransformersBackend(ChatBackend):
    name = "transformers"

    def __init__(
        self,
        path: str | os.PathLike[str],
        gguf_file: str | None = None,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 8,
        num_threads: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        if path.is_file() and path.suffix == ".gguf" and gguf_file is None:
            path, gguf_file = path.parent, path.name
        if not path.is_dir():
            raise ConfigError(f"model directory not found: {path}")
        if gguf_file is not None and not (path / gguf_file).is_file():
            raise ConfigError(f"GGUF file not found: {path / gguf_file}")
        if gguf_file is None and not (path / "config.json").is_file():
            raise ConfigError(
                f"{path} has no config.json: give a saved transformers model directory or 'DIR#file.gguf'"
            )
        if num_threads:
            torch.set_num_threads(num_threads)
        self.name = name or (gguf_file or path.name)
        self.batch_size = max(1, batch_size)
        self.device = device
        self._torch = torch
        self._lock = threading.Lock()  # one generate at a time per model
        t0 = time.perf_counter()
        load_kw: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            # Any: the transformers stubs type generate()/decode() for every model and tokenizer kind
            self.tokenizer: Any = AutoTokenizer.from_pretrained(str(path), **load_kw)
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype), **load_kw)
            self.model: Any = cast(Any, model)
        except (OSError, ValueError) as exc:
            raise LLMError(f"cannot load model from {path}{'/' + gguf_file if gguf_file else ''}: {exc}") from exc
        self.model.to(device).eval()
        self.load_s = time.perf_counter() - t0
        tok = self.tokenizer
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        if not getattr(tok, "chat_template", None):
            tok.chat_template = _FALLBACK_TEMPLATE
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tok.eos_token_id is not None:
            eos_ids.add(tok.eos_token_id)
        self.eos_ids = eos_ids
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)

    # ------------------------------------------------------------------ batching

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        results: list[ChatResult | None] = [None] * len(requests)
        prompts: dict[int, list[int]] = {}
        for i, req in enumerate(requests):
            try:
                prompts[i] = self._encode(req)
            except Exception as exc:
                results[i] = ChatResult.failed(
                    f"cannot build prompt: {type(exc).__name__}: {exc}", req, model=self.name
                )
                continue
            if self.max_positions and len(prompts[i]) + req.max_tokens > self.max_positions:
                results[i] = ChatResult.failed(
                    f"prompt ({len(prompts[i])} tokens) + max_tokens ({req.max_tokens}) exceeds the context ({self.max_positions})",
                    req,
                    model=self.name,
                )
                prompts.pop(i)
        for batch in self._plan(requests, prompts):
            t0 = time.perf_counter()
            try:
                with self._lock:
                    outs = self._run_batch([requests[i] for i in batch], [prompts[i] for i in batch])
            except Exception as exc:  # this micro-batch fails, the others still run
                wall = time.perf_counter() - t0
                outs = [ChatResult.failed(f"{type(exc).__name__}: {exc}", requests[i], wall, self.name) for i in batch]
            for i, out in zip(batch, outs, strict=True):
                results[i] = out
        return [
            r if r is not None else ChatResult.failed("not generated", q, model=self.name)
            for r, q in zip(results, requests, strict=True)
        ]

    def _plan(self, requests: list[ChatRequest], prompts: dict[int, list[int]]) -> list[list[int]]:
        groups: dict[tuple, list[int]] = {}
        batches: list[list[int]] = []
        for i in prompts:
            p = requests[i].params()
            if not p.greedy and p.seed is not None:
                batches.append([i])  # reproducible regardless of batch-mates
                continue
            key = (
                p.max_tokens,
                p.greedy,
                None if p.greedy else (p.temperature, p.top_p),
                p.stop,
                p.logprobs,
                p.top_logprobs,
            )
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            # similar prompt lengths together: less padding
            members.sort(key=lambda i: len(prompts[i]))
            for k in range(0, len(members), self.batch_size):
                batches.append(members[k : k + self.batch_size])
        return batches

    def _encode(self, req: ChatRequest) -> list[int]:
        text = self.tokenizer.apply_chat_template(req.message_dicts(), add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # ------------------------------------------------------------------ one micro-batch

    def _run_batch(self, reqs: list[ChatRequest], prompts: list[list[int]]) -> list[ChatResult]:
        torch = self._torch
        p = reqs[0].params()
        t0 = time.perf_counter()
        width = max(len(x) for x in prompts)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in prompts], dtype=torch.long, device=self.device)
        attention = torch.tensor(
            [[0] * (width - len(x)) + [1] * len(x) for x in prompts], dtype=torch.long, device=self.device
        )
        gen_kw: dict[str, Any] = {
            "max_new_tokens": p.max_tokens,
            "pad_token_id": pad,
            "eos_token_id": sorted(self.eos_ids) or None,
            "return_dict_in_generate": True,
            "output_logits": p.logprobs,
        }
        if p.greedy:
            gen_kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            gen_kw.update(do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=None)
            if p.seed is not None:
                torch.manual_seed(p.seed)
        if p.stop:
            gen_kw.update(stop_strings=list(p.stop), tokenizer=self.tokenizer)
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention, **gen_kw)
        new = out.sequences[:, width:].tolist()
        logprob_steps = None
        if p.logprobs and out.logits:
            logprob_steps = torch.stack(out.logits, dim=1).float().log_softmax(dim=-1)  # [batch, steps, vocab]
        wall = time.perf_counter() - t0
        results = []
        for row, (req, ids) in enumerate(zip(reqs, new, strict=True)):
            results.append(self._result(req, row, prompts[row], ids, logprob_steps, wall))
        return results

    def _result(
        self, req: ChatRequest, row: int, prompt: list[int], ids: list[int], steps: Any, wall: float
    ) -> ChatResult:
        # the row ends at its first EOS (kept in the count, like OpenAI servers) or at max_tokens
        end = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
        body = ids if end is None else ids[:end]
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        finish = "length" if end is None and len(ids) >= req.max_tokens else "stop"
        count = len(body) + (1 if end is not None else 0)
        if req.stop:
            cut = min((text.find(s) for s in req.stop if s in text), default=-1)
            if cut >= 0:
                text = text[:cut]
                finish = "stop"
                count = len(body)  # the filler after a stop string is padding, not output
        logprobs = None
        if steps is not None:
            logprobs = []
            k = req.top_logprobs
            for t, tok_id in enumerate(ids[:count]):
                dist = steps[row, t]
                top = []
                if k:
                    vals, idx = dist.topk(k)
                    top = [
                        TopLogprob(token=self.tokenizer.decode([j]), logprob=float(v))
                        for v, j in zip(vals.tolist(), idx.tolist(), strict=True)
                    ]
                logprobs.append(
                    TokenLogprob(token=self.tokenizer.decode([tok_id]), logprob=float(dist[tok_id]), top=top)
                )
        return ChatResult(
            text=text,
            finish_reason=finish,
            prompt_tokens=len(prompt),
            completion_tokens=count,
            latency_s=wall,
            logprobs=logprobs,
            id=req.id,
            model=self.name,
        )

    def close(self) -> None:
        self.model = None
