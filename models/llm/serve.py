"""A local OpenAI-compatible LLM server on 127.0.0.1, tracked by a pid file.

- ``transformers`` engine (CPU): ``transformers serve`` cannot read GGUF, so a GGUF spec is
  first converted once to a cached safetensors directory (``packaged.gguf_to_hf_dir``); then
  ``HF_HUB_OFFLINE=1 transformers serve --host 127.0.0.1 --port P --device cpu DIR`` runs with
  DIR as its pinned model (requests must name DIR, or no model).
- ``vllm`` engine (GPU): ``vllm serve MODEL --host 127.0.0.1 --port P --served-model-name
  NAME``, only when a ``vllm`` executable is found (``$TRUSTFLOW_VLLM_BIN`` or PATH).

Readiness is ``GET /health`` answering 200. ``status()`` and ``up()`` return the ``openai:``
spec to use. State (pid file, log) lives in ``<home>/llm-server/``.
"""

from __future__ import annotations

import os
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from trustflow.errors import ConfigError, ServiceError
from trustflow.infra.processes import ManagedProcess, free_port, port_open
from trustflow.models.llm.spec import ModelSpec, local_model, parse_spec
from trustflow.settings import Settings

ENGINES = ("transformers", "vllm")


def transformers_executable() -> str:
    exe = Path(sys.executable).parent / "transformers"
    if exe.is_file():
        return str(exe)
    found = shutil.which("transformers")
    if not found:
        raise ServiceError(
            "no `transformers` executable next to this Python or on PATH: pip install 'transformers[serving]'"
        )
    return found


def vllm_executable() -> str:
    explicit = os.environ.get("TRUSTFLOW_VLLM_BIN")
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise ServiceError(f"TRUSTFLOW_VLLM_BIN={explicit} is not an executable file")
        return explicit
    found = shutil.which("vllm")
    if not found:
        raise ServiceError(
            "no `vllm` executable found (PATH or TRUSTFLOW_VLLM_BIN): vLLM needs its own venv and a CUDA GPU; "
            "install it there, or use --engine transformers on CPU"
        )
    return found


@dataclass
class LLMServer:
    state_dir: Path
    name: str = "llm-server"

    @classmethod
    def from_settings(cls, settings: Settings, name: str = "llm-server") -> LLMServer:
        return cls(settings.home_dir / "llm-server", name)

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.state_dir)

    @staticmethod
    def healthy(port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def command(self, spec: ModelSpec, engine: str, port: int) -> tuple[list[str], dict[str, str], str]:
        """(argv, environment, model name the server answers to)."""
        env = dict(os.environ)
        if engine == "transformers":
            if spec.scheme not in ("hf", "pkg"):
                raise ConfigError(f"--engine transformers serves local models (hf: or pkg: specs), not {spec.raw!r}")
            directory, gguf = local_model(spec)
            if gguf is not None:
                from trustflow.models.llm.packaged import GGUFModel, gguf_to_hf_dir

                directory = gguf_to_hf_dir(GGUFModel(directory, gguf))
            elif not (directory / "config.json").is_file():
                raise ConfigError(f"{directory} has no config.json: not a saved transformers model")
            directory = directory.resolve()
            env["HF_HUB_OFFLINE"] = "1"
            if (
                "HF_HUB_CACHE" not in env
                and "HF_HOME" not in env
                and not (Path.home() / ".cache" / "huggingface" / "hub").is_dir()
            ):
                # its /v1/models scans the hub cache and answers 500 when that directory is missing
                empty = self.state_dir / "hf-hub-cache"
                empty.mkdir(parents=True, exist_ok=True)
                env["HF_HUB_CACHE"] = str(empty)
            argv = [
                transformers_executable(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--device",
                "cpu",
                "--log-level",
                "warning",
                str(directory),
            ]
            return argv, env, str(directory)
        if engine == "vllm":
            exe = vllm_executable()
            if spec.scheme in ("hf", "pkg"):
                directory, gguf = local_model(spec)
                model = str((directory / gguf) if gguf else directory)
                served = spec.target if spec.scheme == "pkg" else Path(model).name
            elif spec.scheme == "vllm":
                model = served = spec.target
            else:
                raise ConfigError(f"--engine vllm serves hf:, pkg: or vllm: specs, not {spec.raw!r}")
            return (
                [exe, "serve", model, "--host", "127.0.0.1", "--port", str(port), "--served-model-name", served],
                env,
                served,
            )
        raise ConfigError(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")

    def up(
        self, spec: str, engine: str = "transformers", port: int | None = None, timeout_s: float | None = None
    ) -> dict[str, object]:
        parsed = parse_spec(spec)
        if self.process.running_pid() is not None:
            raise ServiceError(
                f"an LLM server is already running ({self.status().get('spec')}); stop it first: trustflow llm stop"
            )
        port = port or free_port()
        if port_open(port):
            raise ServiceError(f"cannot start the LLM server: port {port} on 127.0.0.1 is in use")
        argv, env, model = self.command(parsed, engine, port)
        base_url = f"http://127.0.0.1:{port}/v1"
        self.process.start(
            argv,
            env=env,
            info={"port": port, "engine": engine, "source": parsed.raw, "model": model, "base_url": base_url},
        )
        try:
            self.process.wait_ready(
                lambda: self.healthy(port),
                timeout_s or (180 if engine == "transformers" else 900),
                f"GET /health on port {port}",
            )
        except ServiceError:
            self.process.stop(timeout_s=10)
            raise
        return self.status()

    def down(self) -> bool:
        return self.process.stop(timeout_s=20)

    def status(self) -> dict[str, object]:
        pid = self.process.running_pid()
        rec = self.process.record() or {}
        if pid is None:
            return {"running": False, "pid": None}
        port = int(rec["port"])
        return {
            "running": True,
            "pid": pid,
            "engine": rec.get("engine"),
            "source": rec.get("source"),
            "base_url": rec.get("base_url"),
            "healthy": self.healthy(port),
            "spec": f"openai:{rec.get('base_url')}#{rec.get('model')}",
            "log": str(self.process.log_file),
        }
