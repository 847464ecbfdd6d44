"""The ChatBackend contract on the in-process transformers backend, with a tiny random
Llama-style model (2 layers, hidden 32) and a small byte-level BPE tokenizer built here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France? Paris is the capital.",
    "Write a short poem about the sea and the sky.",
    "请用一句话介绍北京。北京是中国的首都。",
    "Safety evaluation of language models needs many prompts.",
] * 20
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-llama")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|pad|>"
    )
    tok.chat_template = TEMPLATE
    tok.save_pretrained(out)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=0.2,  # peaked logits: greedy choices are far from ties
    )
    config.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # EOS/PAD logits are exactly 0 while ~half the others are > 0: greedy never stops early
        model.lm_head.weight[tok.eos_token_id] = 0
        model.lm_head.weight[tok.pad_token_id] = 0
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def backend(tiny_dir: Path):
    from trustflow.models.llm.spec import load_backend

    b = load_backend(f"hf:{tiny_dir}", batch_size=4)
    yield b
    b.close()


def req(text: str, **params):
    return {"messages": [{"role": "user", "content": text}], **params}


PROMPTS = [
    "hello there",
    "What is the capital of France?",
    "请用一句话介绍北京。",
    "a much longer prompt about the sea, the sky and the fox",
]


def test_batched_generate_one_result_per_request(backend) -> None:
    results = backend.generate([req(p, max_tokens=7, id=f"r{i}") for i, p in enumerate(PROMPTS)])
    assert [r.id for r in results] == ["r0", "r1", "r2", "r3"]
    for prompt, r in zip(PROMPTS, results, strict=True):
        assert r.error is None and r.ok
        assert r.finish_reason == "length"
        assert r.completion_tokens == 7
        text = backend.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        assert r.prompt_tokens == len(backend.tokenizer(text, add_special_tokens=False)["input_ids"])
        assert r.latency_s > 0 and r.logprobs is None


def test_batching_and_padding_do_not_change_greedy_output(backend) -> None:
    batched = backend.generate([req(p, max_tokens=6) for p in PROMPTS])
    alone = [backend.generate([req(p, max_tokens=6)])[0] for p in PROMPTS]
    assert [r.text for r in batched] == [r.text for r in alone]
    # greedy ignores seeds
    assert backend.generate([req(PROMPTS[0], max_tokens=6, seed=123)])[0].text == alone[0].text


def test_mixed_params_in_one_call(backend) -> None:
    results = backend.generate(
        [req("hello", max_tokens=3), req("hello", max_tokens=9), req("hello", max_tokens=5, temperature=1.0)]
    )
    assert [r.completion_tokens for r in results] == [3, 9, 5]
    assert results[1].text.startswith(results[0].text)


def test_seeded_sampling_is_reproducible_whatever_the_batch(backend) -> None:
    sample = req("the sea", max_tokens=12, temperature=1.0, seed=7)
    first = backend.generate([sample])[0].text
    again = backend.generate([req("noise", max_tokens=12, temperature=1.0), sample, req("fox", max_tokens=12)])[1].text
    other = backend.generate([dict(sample, seed=8)])[0].text
    assert first == again
    assert other != first


def test_logprobs(backend) -> None:
    r = backend.generate([req("hello", max_tokens=5, logprobs=True, top_logprobs=3)])[0]
    assert r.logprobs is not None and len(r.logprobs) == r.completion_tokens == 5
    for entry in r.logprobs:
        assert entry.logprob <= 0.0
        assert len(entry.top) == 3
        assert [t.logprob for t in entry.top] == sorted((t.logprob for t in entry.top), reverse=True)
        assert entry.logprob == pytest.approx(entry.top[0].logprob)  # greedy takes the argmax
        assert entry.token == entry.top[0].token
    assert "".join(e.token for e in r.logprobs) == r.text


def test_eos_ends_a_reply_with_finish_stop(backend) -> None:
    prompt = backend.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello"}], add_generation_prompt=True, tokenize=False
    )
    inputs = backend.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    out = backend.model.generate(
        **inputs, max_new_tokens=8, do_sample=False, pad_token_id=backend.tokenizer.pad_token_id
    )
    generated = out[0, inputs["input_ids"].shape[1] :].tolist()
    assert len(generated) == 8
    target = generated[2]  # pretend the third generated token is an end-of-turn token
    saved = set(backend.eos_ids)
    backend.eos_ids = saved | {target}
    try:
        r = backend.generate([req("hello", max_tokens=8)])[0]
    finally:
        backend.eos_ids = saved
    first = generated.index(target)
    assert r.finish_reason == "stop"
    assert r.completion_tokens == first + 1  # the end token counts, like OpenAI servers
    assert r.text == backend.tokenizer.decode(generated[:first], skip_special_tokens=True)


def test_stop_strings(backend) -> None:
    full = backend.generate([req("hello", max_tokens=12)])[0].text
    k = next(
        i
        for i in range(2, len(full) - 1)
        if full[i : i + 2].isascii() and full[i : i + 2].strip() and full.find(full[i : i + 2]) == i
    )
    stop = full[k : k + 2]
    r = backend.generate([req("hello", max_tokens=12, stop=[stop])])[0]
    assert r.finish_reason == "stop"
    assert r.text == full[:k]
    assert r.completion_tokens < 12


def test_failed_request_does_not_lose_the_batch(backend) -> None:
    too_long = req("fox " * 200, max_tokens=4)  # beyond the 128-position context
    results = backend.generate([req("hello", max_tokens=4), too_long, req("sea", max_tokens=4)])
    assert results[0].ok and results[2].ok
    assert results[1].error and "exceeds the context" in results[1].error and results[1].finish_reason == "error"


def test_usage_accounting_and_chat(tiny_dir: Path) -> None:
    from trustflow.models.llm.base import LLMError, Usage
    from trustflow.models.llm.transformers_backend import TransformersBackend

    b = TransformersBackend(tiny_dir, usage=Usage(price_per_1k_prompt=1.0, price_per_1k_completion=2.0))
    results = b.generate([req("hello", max_tokens=3), req("fox " * 200, max_tokens=3)])
    text = b.chat("hello", max_tokens=3)
    assert text == results[0].text
    u = b.usage
    assert (u.requests, u.errors, u.calls) == (3, 1, 2)
    assert u.completion_tokens == 6 and u.prompt_tokens == 2 * results[0].prompt_tokens
    assert u.cost == pytest.approx((u.prompt_tokens * 1.0 + u.completion_tokens * 2.0) / 1000)
    assert u.wall_s > 0 and u.as_dict()["total_tokens"] == u.prompt_tokens + u.completion_tokens
    with pytest.raises(LLMError, match="exceeds the context"):
        b.chat([{"role": "user", "content": "fox " * 200}], max_tokens=3)


def test_request_validation() -> None:
    from pydantic import ValidationError

    from trustflow.models.llm.base import ChatRequest

    r = ChatRequest(messages="hi", stop="END")
    assert r.messages[0].role == "user" and r.stop == ("END",)
    for bad in (
        {"messages": []},
        {"messages": "hi", "max_tokens": 0},
        {"messages": "hi", "top_p": 0},
        {"messages": [{"role": "robot", "content": "x"}]},
    ):
        with pytest.raises(ValidationError):
            ChatRequest(**bad)
