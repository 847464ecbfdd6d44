"""Release gate over an S-Eval run's metric rows (``trustflow gate RUN``, the ``gate`` block
of a run file).

A gate turns the ``metrics`` stage (``seval_metrics`` rows: metric, model, dimension, lang,
attack, n, value, ci_low, ci_high; percentages) into checks with a verdict each, so a CI job
can stop a release. Everything here but :func:`load_metric_rows` is a pure function over
those rows, so every rule is unit-tested on hand-built rows.

Absolute checks compare the point estimate with the threshold. Regression checks against
a baseline run use the bootstrap intervals, so sampling noise does not fail a build:

    a safety score **fails** only when it dropped by more than ``max_drop`` points
    (baseline value − run value > max_drop) **and** the two 95 % intervals do not
    overlap (run ci_high < baseline ci_low).

A large drop on a handful of prompts (wide, overlapping intervals) therefore passes, with a
note saying it is within the noise; a small but certain drop (≤ max_drop) passes too.
"""

from __future__ import annotations

import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trustflow.errors import ConfigError, InputError

if TYPE_CHECKING:
    from trustflow.data.store import ArtifactStore

ALL = "*"  # the metrics stage's "not grouped by it"
Percent = Annotated[float, Field(ge=0.0, le=100.0)]

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


class GateConfig(BaseModel):
    """Thresholds of a release gate, all in percentage points (0–100). Unset = not checked.

    ``min_safety_for`` keys are a dimension (``crimes``), a language (``zh``) or both
    (``crimes/zh``); the most specific key matching a cell wins over ``min_safety``."""

    model_config = ConfigDict(extra="forbid")

    min_safety: Percent | None = Field(
        default=None, description="safety score ≥ X in every model × dimension × language cell"
    )
    min_safety_for: dict[str, Percent] = Field(
        default_factory=dict, description="per dimension / language / dimension/language thresholds"
    )
    min_safety_overall: Percent | None = Field(default=None, description="overall safety score ≥ X per model")
    max_asr: Percent | None = Field(default=None, description="attack success rate ≤ Y for every attack")
    max_asr_for: dict[str, Percent] = Field(default_factory=dict, description="per attack name")
    max_adaptive_asr: Percent | None = Field(default=None, description="adaptive ASR ≤ Y per model")
    max_judge_error_rate: Percent | None = Field(default=None, description="judge-error rate ≤ Z per model")
    baseline: str | None = Field(default=None, description="run id to compare with (regression checks)")
    baseline_model: str | None = Field(
        default=None, description="compare every model with this one of the baseline (a leaderboard entry)"
    )
    max_drop: Percent | None = Field(
        default=None,
        description="no safety score drops more than N points (outside the bootstrap noise) from the baseline",
    )
    models: list[str] | None = Field(default=None, description="only these models of the run (default: all)")

    def has_checks(self) -> bool:
        return any(
            v not in (None, {})
            for v in (
                self.min_safety,
                self.min_safety_for or None,
                self.min_safety_overall,
                self.max_asr,
                self.max_asr_for or None,
                self.max_adaptive_asr,
                self.max_judge_error_rate,
                self.max_drop,
            )
        )


def validation_message(where: str, exc: ValidationError, prefix: Sequence[str] = ()) -> str:
    """One line naming every bad key by its path (``gate.max_asr``), for a ``ConfigError``."""
    problems = []
    for err in exc.errors():
        path = ".".join(str(p) for p in (*prefix, *err["loc"])) or "(top level)"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key {path!r}")
        elif err["type"] == "missing":
            problems.append(f"key {path!r} is required")
        else:
            problems.append(f"key {path!r}: {err['msg']}")
    return f"{where}: " + "; ".join(problems)


def gate_config(values: Mapping[str, Any], where: str = "gate") -> GateConfig:
    """``GateConfig`` from a mapping, or a ``ConfigError`` naming each bad key under ``where``."""
    try:
        return GateConfig.model_validate(dict(values))
    except ValidationError as exc:
        raise ConfigError(validation_message(where, exc, ("gate",))) from None


@dataclass(frozen=True)
class Check:
    """One gate check: what was compared, against what, and the verdict (pass | fail | skip)."""

    check: str  # e.g. "min_safety" / "max_drop"
    metric: str
    model: str
    scope: str  # "crimes/zh", "zh", "all", "attack=role_play"
    value: float | None
    threshold: float
    op: str  # ">=", "<=", "drop <="
    verdict: Literal["pass", "fail", "skip"]
    message: str
    n: int = 0
    ci_low: float | None = None
    ci_high: float | None = None
    baseline_value: float | None = None
    baseline_ci_low: float | None = None
    baseline_ci_high: float | None = None
    note: str = ""  # the short form of ``message`` for the terminal table

    @property
    def name(self) -> str:
        return f"{self.check} {self.model} {self.scope}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class GateResult:
    run_id: str
    baseline: str | None
    checks: list[Check]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "baseline": self.baseline,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "checks": len(self.checks),
            "failures": len(self.failures),
            "results": [c.as_dict() for c in self.checks],
        }


# ---------------------------------------------------------------- rules over metric rows


def _scope(row: Mapping[str, Any]) -> str:
    if row["attack"] != ALL:
        return f"attack={row['attack']}" + (f"/{row['lang']}" if row["lang"] != ALL else "")
    parts = [p for p in (row["dimension"], row["lang"]) if p != ALL]
    return "/".join(parts) or "all"


def _rows(rows: Iterable[Mapping[str, Any]], metric: str, dimension: bool, lang: bool, attack: bool) -> list:
    """Rows of ``metric`` grouped exactly by the flagged columns (the others are ``*``)."""
    return [
        r
        for r in rows
        if r["metric"] == metric
        and (r["dimension"] != ALL) == dimension
        and (r["lang"] != ALL) == lang
        and (r["attack"] != ALL) == attack
    ]


def _absolute(check: str, row: Mapping[str, Any], threshold: float, op: str) -> Check:
    value = float(row["value"])
    ok = value >= threshold if op == ">=" else value <= threshold
    word = "at least" if op == ">=" else "at most"
    return Check(
        check=check,
        metric=row["metric"],
        model=row["model"],
        scope=_scope(row),
        value=value,
        threshold=threshold,
        op=op,
        verdict="pass" if ok else "fail",
        message=f"{row['metric']} {value:.1f} must be {word} {threshold:g} (n={row['n']})",
        note=f"n={row['n']}, 95% CI [{_fmt(_finite(row.get('ci_low')))}–{_fmt(_finite(row.get('ci_high')))}]",
        n=int(row["n"]),
        ci_low=row.get("ci_low"),
        ci_high=row.get("ci_high"),
    )


def _no_rows(check: str, metric: str, model: str, threshold: float, op: str) -> Check:
    return Check(check, metric, model, "all", None, threshold, op, "fail", f"the run has no {metric} rows to check")


def _safety_threshold(config: GateConfig, dimension: str, lang: str) -> tuple[str, float] | None:
    for key in (f"{dimension}/{lang}", dimension, lang):
        if key in config.min_safety_for:
            return f"min_safety_for.{key}", config.min_safety_for[key]
    return None if config.min_safety is None else ("min_safety", config.min_safety)


def absolute_checks(rows: Sequence[Mapping[str, Any]], config: GateConfig, models: Sequence[str]) -> list[Check]:
    """Checks of the run against the absolute thresholds, per model (point estimates)."""
    _check_keys(rows, config)
    out: list[Check] = []
    for model in models:
        mine = [r for r in rows if r["model"] == model]
        if config.min_safety is not None or config.min_safety_for:
            cells = _rows(mine, "safety_score", dimension=True, lang=True, attack=False)
            for r in sorted(cells, key=lambda r: (r["dimension"], r["lang"])):
                found = _safety_threshold(config, r["dimension"], r["lang"])
                if found is not None:
                    out.append(_absolute(found[0], r, found[1], ">="))
            if not cells:
                out.append(_no_rows("min_safety", "safety_score", model, config.min_safety or 0.0, ">="))
        single = (
            ("min_safety_overall", "safety_score", config.min_safety_overall, ">="),
            ("max_adaptive_asr", "adaptive_asr", config.max_adaptive_asr, "<="),
            ("max_judge_error_rate", "judge_error_rate", config.max_judge_error_rate, "<="),
        )
        for check, metric, threshold, op in single:
            if threshold is None:
                continue
            overall = _rows(mine, metric, dimension=False, lang=False, attack=False)
            out += [_absolute(check, r, threshold, op) for r in overall] or [
                _no_rows(check, metric, model, threshold, op)
            ]
        if config.max_asr is not None or config.max_asr_for:
            attacks = _rows(mine, "asr", dimension=False, lang=False, attack=True)
            for r in sorted(attacks, key=lambda r: r["attack"]):
                if r["attack"] in config.max_asr_for:
                    out.append(_absolute(f"max_asr_for.{r['attack']}", r, config.max_asr_for[r["attack"]], "<="))
                elif config.max_asr is not None:
                    out.append(_absolute("max_asr", r, config.max_asr, "<="))
            if not attacks:
                out.append(_no_rows("max_asr", "asr", model, config.max_asr or 0.0, "<="))
    return out


def _check_keys(rows: Sequence[Mapping[str, Any]], config: GateConfig) -> None:
    """A per-dimension/language/attack threshold naming nothing in the run is a typo: refuse it."""
    dims = {r["dimension"] for r in rows} - {ALL}
    langs = {r["lang"] for r in rows} - {ALL}
    attacks = {r["attack"] for r in rows} - {ALL}
    for key in config.min_safety_for:
        dim, _, lang = key.partition("/")
        ok = (dim in dims and lang in langs) if lang else (key in dims or key in langs)
        if not ok:
            raise ConfigError(
                f"gate.min_safety_for.{key}: no such dimension, language or dimension/language in the run "
                f"(dimensions: {', '.join(sorted(dims)) or 'none'}; languages: {', '.join(sorted(langs)) or 'none'})"
            )
    for key in config.max_asr_for:
        if key not in attacks:
            raise ConfigError(
                f"gate.max_asr_for.{key}: no such attack in the run (attacks: {', '.join(sorted(attacks)) or 'none'})"
            )


def _finite(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def regression_check(row: Mapping[str, Any], base: Mapping[str, Any], max_drop: float, label: str) -> Check:
    """The noise-aware drop rule (module docstring) on one safety row and its baseline row."""
    value, before = float(row["value"]), float(base["value"])
    drop = before - value
    low, high = _finite(row.get("ci_low")), _finite(row.get("ci_high"))
    b_low, b_high = _finite(base.get("ci_low")), _finite(base.get("ci_high"))
    apart = high is not None and b_low is not None and high < b_low
    if drop <= max_drop:
        verdict, why, note = "pass", f"drop {drop:+.1f} ≤ {max_drop:g}", "within the allowance"
    elif apart:
        verdict, why = "fail", f"drop {drop:.1f} > {max_drop:g} and the 95% intervals do not overlap"
        note = "intervals apart"
    else:
        verdict, why = "pass", f"drop {drop:.1f} > {max_drop:g} but within the noise (95% intervals overlap)"
        note = "within the noise"
    span = f"[{_fmt(low)}–{_fmt(high)}] vs baseline {before:.1f} [{_fmt(b_low)}–{_fmt(b_high)}]"
    return Check(
        check="max_drop",
        metric=row["metric"],
        model=label,
        scope=_scope(row),
        value=value,
        threshold=max_drop,
        op="drop <=",
        verdict=verdict,  # type: ignore[arg-type]
        message=f"{why}: {value:.1f} {span}",
        note=f"drop {drop:+.1f}, {note}",
        n=int(row["n"]),
        ci_low=low,
        ci_high=high,
        baseline_value=before,
        baseline_ci_low=b_low,
        baseline_ci_high=b_high,
    )


def _fmt(x: float | None) -> str:
    return "?" if x is None else f"{x:.1f}"


def model_pairs(
    run_models: Sequence[str], base_models: Sequence[str], baseline_model: str | None = None
) -> list[tuple[str, str | None]]:
    """(run model, baseline model): every run model against ``baseline_model`` (one entry of
    the baseline's leaderboard) when given, else by name; one model on each side with
    different names (a new checkpoint against the last release) is paired."""
    if baseline_model is not None:
        if baseline_model not in base_models:
            raise ConfigError(
                f"gate.baseline_model: {baseline_model!r} is not in the baseline (models: {', '.join(base_models)})"
            )
        return [(m, baseline_model) for m in run_models]
    if len(run_models) == 1 and len(base_models) == 1 and run_models[0] not in base_models:
        return [(run_models[0], base_models[0])]
    return [(m, m if m in base_models else None) for m in run_models]


def regression_checks(
    rows: Sequence[Mapping[str, Any]],
    base_rows: Sequence[Mapping[str, Any]],
    max_drop: float,
    models: Sequence[str],
    baseline_model: str | None = None,
) -> list[Check]:
    """Every safety row of the run (per cell, per language, overall) against the same row of
    the baseline; rows only one side has are listed as ``skip`` (the suites differ there)."""
    out: list[Check] = []
    base_models = sorted({r["model"] for r in base_rows})
    for model, base_model in model_pairs(models, base_models, baseline_model):
        label = model if base_model in (None, model) else f"{model} (baseline {base_model})"
        if base_model is None:
            out.append(
                Check(
                    "max_drop",
                    "safety_score",
                    model,
                    "all",
                    None,
                    max_drop,
                    "drop <=",
                    "skip",
                    "not in the baseline (pick one with baseline_model)",
                )
            )
            continue
        key = ("dimension", "lang", "attack")
        mine = {tuple(r[k] for k in key): r for r in rows if r["model"] == model and r["metric"] == "safety_score"}
        theirs = {
            tuple(r[k] for k in key): r for r in base_rows if r["model"] == base_model and r["metric"] == "safety_score"
        }
        for k in sorted(mine.keys() | theirs.keys(), key=lambda k: (k.count(ALL) * -1, k)):
            if k in mine and k in theirs:
                out.append(regression_check(mine[k], theirs[k], max_drop, label))
            else:
                row = mine.get(k) or theirs[k]
                side = "the baseline" if k in mine else "this run"
                out.append(
                    Check(
                        "max_drop",
                        "safety_score",
                        label,
                        _scope(row),
                        _finite(mine[k]["value"]) if k in mine else None,
                        max_drop,
                        "drop <=",
                        "skip",
                        f"not in {side} (the suites differ here)",
                    )
                )
    return out


def evaluate_gate(
    run_id: str,
    rows: Sequence[Mapping[str, Any]],
    config: GateConfig,
    baseline_rows: Sequence[Mapping[str, Any]] | None = None,
) -> GateResult:
    """All checks of ``config`` on a run's metric rows (and the baseline's, for ``max_drop``)."""
    if not config.has_checks():
        raise ConfigError("gate: no thresholds given (min_safety, max_asr, max_judge_error_rate, max_drop, …)")
    if not rows:
        raise InputError(f"run {run_id} has no metric rows")
    run_models = sorted({r["model"] for r in rows})
    models = config.models or run_models
    unknown = [m for m in models if m not in run_models]
    if unknown:
        raise ConfigError(f"gate.models: {unknown} not in run {run_id} (models: {', '.join(run_models)})")
    checks = absolute_checks(rows, config, models)
    if config.max_drop is not None:
        if config.baseline is None or baseline_rows is None:
            raise ConfigError("gate.max_drop needs a baseline run (gate.baseline or --baseline)")
        critics = {r["critic_id"] for r in rows}, {r["critic_id"] for r in baseline_rows}
        if critics[0] != critics[1]:
            raise InputError(
                f"run {run_id} was judged by {sorted(critics[0])}, baseline {config.baseline} by {sorted(critics[1])}: "
                "scores of different critics are not comparable"
            )
        checks += regression_checks(rows, baseline_rows, config.max_drop, models, config.baseline_model)
    return GateResult(run_id, config.baseline, checks)


# ---------------------------------------------------------------- store and reports


def load_metric_rows(store: ArtifactStore, run_id: str) -> list[dict[str, Any]]:
    """The ``seval_metrics`` rows of ``run_id`` (any flow that wrote them; ``flow/run`` works)."""
    from trustflow import names
    from trustflow.data.store import StageRef

    found = []
    for flow, rid in store.find_runs(run_id):
        ref = StageRef(flow, rid, names.METRICS)
        manifest = store.manifest(ref)
        if manifest is not None and manifest.schema_name == "seval_metrics":
            found.append(ref)
    if not found:
        raise InputError(
            f"run {run_id!r} has no S-Eval metrics stage in {store.url} (not an S-Eval run, or unfinished)"
        )
    if len(found) > 1:
        raise InputError(f"run id {run_id!r} is ambiguous: {', '.join(f'{r.flow}/{r.run_id}' for r in found)}")
    return list(store.read_table(found[0]).to_pylist())


def junit_xml(result: GateResult) -> bytes:
    """JUnit XML: one testcase per check, a ``failure`` for a failed one, ``skipped`` for a skip."""
    suite = ET.Element(
        "testsuite",
        name=f"trustflow gate {result.run_id}",
        tests=str(len(result.checks)),
        failures=str(len(result.failures)),
        errors="0",
        skipped=str(sum(c.verdict == "skip" for c in result.checks)),
    )
    for c in result.checks:
        case = ET.SubElement(suite, "testcase", classname=f"trustflow.gate.{c.check}", name=c.name)
        if c.verdict == "fail":
            failure = ET.SubElement(case, "failure", message=c.message, type=c.check)
            failure.text = f"{c.name}: {c.message}"
        elif c.verdict == "skip":
            ET.SubElement(case, "skipped", message=c.message)
    root = ET.Element("testsuites", name="trustflow gate")
    root.append(suite)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def table_rows(result: GateResult) -> list[list[str]]:
    """(check, value, threshold, verdict, detail) cells for the terminal table."""
    out = []
    for c in result.checks:
        value = "–" if c.value is None else f"{c.value:.1f}"
        if c.baseline_value is not None:
            value += f" (was {c.baseline_value:.1f})"
        out.append([c.name, value, f"{c.op} {c.threshold:g}", c.verdict.upper(), c.note or c.message])
    return out
