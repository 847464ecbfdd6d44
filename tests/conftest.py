"""Shared test setup: an isolated trustflow home, Prefect home and Ray per session.

Environment is set at import time because Prefect reads ``PREFECT_HOME`` when imported.
Services started here (SeaweedFS, Ray) are the tests' own and are stopped at the end.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="trustflow-tests-"))
(_SESSION_DIR / "prefect").mkdir()
os.environ.update(
    {
        "TRUSTFLOW_HOME": str(_SESSION_DIR / "home"),
        "PREFECT_HOME": str(_SESSION_DIR / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        # converted models (hundreds of MB) are reused across sessions instead of piling up in /tmp
        "TRUSTFLOW_MODEL_CACHE": os.environ.get(
            "TRUSTFLOW_MODEL_CACHE", str(Path(__file__).resolve().parents[1] / ".trustflow" / "cache" / "models")
        ),
    }
)
for leaked in ("TRUSTFLOW_STORE_URL", "TRUSTFLOW_S3_ENDPOINT_URL", "PREFECT_API_URL", "TRUSTFLOW_CONFIG"):
    os.environ.pop(leaked, None)

import pytest  # noqa: E402

from trustflow.infra.local_credentials import ensure_local_credentials  # noqa: E402

# Before any Ray starts: local Ray workers inherit the environment they are started with.
for leaked in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
    os.environ.pop(leaked, None)
ensure_local_credentials(_SESSION_DIR / "home", create=True)

SHARED_SEVAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "s-eval" / "small"


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def seval_small() -> Path:
    if not SHARED_SEVAL.is_dir():
        pytest.fail(f"S-Eval sample missing at {SHARED_SEVAL}: CI must run with ../shared beside the repo")
    return SHARED_SEVAL


@pytest.fixture(scope="session")
def seaweedfs(session_dir: Path):
    """A real SeaweedFS on free loopback ports, with this session's own credentials."""
    from trustflow.infra.processes import free_port_with_grpc
    from trustflow.infra.seaweedfs import SeaweedFS
    from trustflow.settings import SeaweedFSConfig

    ports = {name: free_port_with_grpc() for name in ("s3_port", "master_port", "volume_port", "filer_port")}
    server = SeaweedFS(session_dir / "seaweedfs", SeaweedFSConfig(bucket="tf-test", **ports))
    server.up(timeout_s=90)
    yield server
    server.down()


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for the session (2 CPUs), shut down at the end."""
    from trustflow.infra.ray_runtime import ensure_ray, shutdown_ray
    from trustflow.settings import load_settings

    ensure_ray(load_settings(ray_num_cpus=2))
    yield
    shutdown_ray()


@pytest.fixture()
def local_settings(tmp_path: Path):
    from trustflow.settings import load_settings

    return load_settings(store_url=f"file://{tmp_path / 'store'}", home=tmp_path / "home")


@pytest.fixture()
def s3_settings(seaweedfs, request):
    """Settings for a fresh prefix of the SeaweedFS bucket (one per test)."""
    from trustflow.settings import load_settings

    prefix = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:60]
    return load_settings(store_url=f"s3://{seaweedfs.config.bucket}/{prefix}", s3_endpoint_url=seaweedfs.endpoint_url)


def build_tiny_llm(out: Path) -> Path:
    """A randomly initialised 2-layer Llama with a small byte-level BPE tokenizer and a chat
    template: real transformers code paths, milliseconds per token (mechanics tests only)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [
        "How do I stay safe online? Use strong passwords.",
        "请用一句话介绍北京。北京是中国的首都。",
        "I can't help with that.",
    ] * 20
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|pad|>"
    )
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    tok.save_pretrained(out)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    config.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llm(session_dir: Path) -> str:
    """Model spec of the tiny random LLM (built once per session)."""
    return f"hf:{build_tiny_llm(session_dir / 'tiny-llm')}"
