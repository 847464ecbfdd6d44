"""``trustflow llm``: serve a local model over an OpenAI-compatible API, check a spec, list
packaged models. Specs: ``pkg:NAME``, ``hf:/dir[#file.gguf]``, ``openai:URL#MODEL``, ``vllm:...``."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from trustflow.cli.common import bootstrap, console, handle_errors

llm_app = typer.Typer(no_args_is_help=True, help="LLM backends: serve a model locally, chat with a spec.")


@llm_app.command("serve")
@handle_errors
def serve(
    spec: str = typer.Argument(
        ..., help="What to serve: pkg:NAME, hf:/dir, hf:/dir#file.gguf (vllm engine also: vllm:MODEL)."
    ),
    engine: str = typer.Option(
        "transformers", "--engine", "-e", help="transformers (CPU) | vllm (GPU; needs a `vllm` executable)."
    ),
    port: int | None = typer.Option(None, "--port", "-p", help="Port on 127.0.0.1 (default: a free one)."),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds to wait for /health."),
) -> None:
    """Start an OpenAI-compatible server on 127.0.0.1 (GGUF is converted once), wait until it is
    healthy, print the openai: spec to use."""
    settings = bootstrap()
    from trustflow.models.llm.serve import LLMServer

    status = LLMServer.from_settings(settings).up(spec, engine=engine, port=port, timeout_s=timeout)
    console.print_json(json.dumps(status))
    console.print(f"use it: {status['spec']}", highlight=False, soft_wrap=True)


@llm_app.command("stop")
@handle_errors
def stop() -> None:
    """Stop the LLM server this project started (and nothing else)."""
    from trustflow.models.llm.serve import LLMServer

    console.print("stopped" if LLMServer.from_settings(bootstrap()).down() else "not running")


@llm_app.command("status")
@handle_errors
def status() -> None:
    """Is our LLM server running, healthy, and which spec reaches it."""
    from trustflow.models.llm.serve import LLMServer

    console.print_json(json.dumps(LLMServer.from_settings(bootstrap()).status()))


@llm_app.command("chat")
@handle_errors
def chat(
    spec: str = typer.Argument(..., help="Model spec, e.g. pkg:smollm2-135m or openai:http://127.0.0.1:8000/v1#MODEL."),
    prompt: str = typer.Argument(..., help="The user message."),
    system: str | None = typer.Option(None, "--system", help="A system message."),
    max_tokens: int = typer.Option(128, "--max-tokens", "-n"),
    temperature: float = typer.Option(0.0, "--temperature", "-t"),
    seed: int | None = typer.Option(None, "--seed"),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="Env var holding the API key (openai: specs)."),
) -> None:
    """Send one prompt and print the reply plus token usage (a quick check of a spec)."""
    bootstrap()
    from trustflow.models.llm.base import LLMError
    from trustflow.models.llm.spec import load_backend, parse_spec

    parsed = parse_spec(spec)
    options = {"api_key_env": api_key_env} if api_key_env and parsed.scheme == "openai" else {}
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    with load_backend(parsed, **options) as backend:
        result = backend.generate(
            [{"messages": messages, "max_tokens": max_tokens, "temperature": temperature, "seed": seed}]
        )[0]
    if result.error:
        raise LLMError(f"{spec}: {result.error}")
    console.print(result.text, highlight=False, markup=False, soft_wrap=True)
    console.print(
        f"[dim]finish={result.finish_reason} prompt_tokens={result.prompt_tokens} "
        f"completion_tokens={result.completion_tokens} latency={result.latency_s:.2f}s[/]",
        highlight=False,
    )


@llm_app.command("models")
@handle_errors
def models() -> None:
    """The models shipped in pip packages (usable offline as pkg:NAME)."""
    from trustflow.models.llm.packaged import PACKAGED

    table = Table(title="packaged models")
    table.add_column("spec", no_wrap=True)
    table.add_column("description", overflow="fold")
    for name in PACKAGED.names():
        table.add_row(f"pkg:{name}", PACKAGED.get(name).description)
    console.print(table)
