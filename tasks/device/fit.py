"""Fit a compact model to Gummel sweeps: weighted least squares in log-current space.

Plain functions of arrays (no Prefect, no store), so a Ray task can call them per key later.

Why log space: a Gummel plot spans 6–10 decades; an absolute-current residual would fit only
the top decade. Each point's weight is 1/σ with σ = sqrt(rel² + (floor/I)²)/ln 10 decades — the
relative instrument noise, growing to ~0.4 decade at the noise floor; points below 3× the noise
floor and compliance-clipped points are left out (they carry no slope information).

Staged extraction (the classic Gummel-plot order, which keeps multi-parameter fits from
trading one term against another):
  1. ideal region — points below 1 % of the largest current, knee off, RE = 0;
  2. everything — knee and series resistance free;
  3. joint across V_sub — the back-gate coupling γ freed (with one V_sub it is not identifiable
     and stays fixed).
Each start is a physics guess (slopes and intercepts of the measured curves), perturbed for the
other starts; the lowest cost wins. In stages 1–3 the internal voltage uses the *measured*
currents, V_i = V_BE − RE·(I_C + I_B)_meas (explicit, so fast); a final polish uses the exact
implicit solve the SPICE subcircuit does. Standard errors come from the Jacobian at the optimum,
cov = (JᵀJ)⁻¹·χ²_red.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field
from scipy.optimize import least_squares

from trustflow.models.device.base import COMPACT_MODELS, LN10, CompactModel
from trustflow.registry import Options

FLOOR_MARGIN = 3.0  # points below 3× the noise floor are not fitted
RMS_MARGIN = 10.0  # fit error is reported over points above 10× the floor (instrument noise < 10 %)
IDEAL_FRACTION = 1e-2  # stage 1 uses points below 1 % of the largest current


class FitConfig(Options):
    """How one fit runs (the model is a registry name: ``cryo4k`` or ``gummel_poon``)."""

    model: str = "cryo4k"
    starts: int = Field(default=3, ge=1)  # multi-start: the physics guess plus perturbed copies
    rel_noise: float = Field(default=0.01, gt=0)  # assumed relative current noise (weights)
    noise_floor_a: float = Field(default=1e-13, gt=0)  # used where the data has no noise_floor_a
    max_nfev: int = Field(default=400, ge=10)  # per stage
    seed: int = 0


@dataclass
class Sweeps:
    """The points of one fit: one device at one temperature, one or several V_sub values."""

    v_be: np.ndarray
    v_sub: np.ndarray
    i_c: np.ndarray
    i_b: np.ndarray
    temperature_k: float
    noise_floor_a: float = 1e-13


@dataclass
class FitResult:
    model: str
    temperature_k: float
    v_subs: list[float]
    names: list[str]
    values: np.ndarray
    stderr: np.ndarray
    rms_decades: float  # unweighted RMS of log10 residuals, I_C and I_B points above 10× the floor
    rms_decades_ic: float
    n_points: int  # points in the RMS
    cost: float
    seconds: float
    free: list[str] = field(default_factory=list)

    def param(self, name: str) -> float:
        return float(self.values[self.names.index(name)])


def _masks(s: Sweeps) -> tuple[np.ndarray, np.ndarray]:
    floor = FLOOR_MARGIN * s.noise_floor_a
    return s.i_c > floor, s.i_b > floor


def _sigma(i: np.ndarray, floor: float, rel: float) -> np.ndarray:
    return np.sqrt(rel**2 + (floor / i) ** 2) / LN10


def _residual_fn(
    model: type[CompactModel], s: Sweeps, base: np.ndarray, free: np.ndarray, sel: np.ndarray, rel: float, exact: bool
) -> Callable[[np.ndarray], np.ndarray]:
    mc, mb = _masks(s)
    mc, mb = mc & sel, mb & sel
    lc, lb = np.log10(s.i_c[mc]), np.log10(s.i_b[mb])
    wc = 1.0 / _sigma(s.i_c[mc], s.noise_floor_a, rel)
    wb = 1.0 / _sigma(s.i_b[mb], s.noise_floor_a, rel)
    re_i = model.index("re")
    meas_total = s.i_c + s.i_b

    def residuals(x: np.ndarray) -> np.ndarray:
        p = base.copy()
        p[free] = x
        if exact:
            ic, ib = model.currents(p, s.v_be, s.v_sub, s.temperature_k)
        else:
            v_i = s.v_be - p[re_i] * meas_total
            ic, ib = model.intrinsic(p, v_i, s.v_sub, np.full_like(s.v_be, s.temperature_k))
        rc = (np.log10(np.maximum(ic[mc], 1e-300)) - lc) * wc
        rb = (np.log10(np.maximum(ib[mb], 1e-300)) - lb) * wb
        return np.concatenate([rc, rb])

    return residuals


def _solve(
    model: type[CompactModel],
    s: Sweeps,
    p0: np.ndarray,
    free: np.ndarray,
    sel: np.ndarray,
    cfg: FitConfig,
    exact: bool = False,
) -> tuple[np.ndarray, object]:
    lo, hi = model.bounds()
    fn = _residual_fn(model, s, p0, free, sel, cfg.rel_noise, exact)
    x0 = np.clip(p0[free], lo[free] + 1e-9 * (hi[free] - lo[free]), hi[free] - 1e-9 * (hi[free] - lo[free]))
    res = least_squares(fn, x0, bounds=(lo[free], hi[free]), x_scale="jac", max_nfev=cfg.max_nfev, method="trf")
    p = p0.copy()
    p[free] = res.x
    return p, res


def _gamma_guess(model: type[CompactModel], s: Sweeps, p: np.ndarray) -> float:
    """Back-gate coupling from the horizontal shift of log I_C between the lowest and highest
    V_sub curves in their upper-middle range: γ ≈ ΔV_BE / ΔV_sub at equal current."""
    vs = np.unique(s.v_sub)
    a, b = s.v_sub == vs[0], s.v_sub == vs[-1]
    target = np.sqrt(s.i_c[a].max() * max(s.i_c[a].min(), s.noise_floor_a * 10)) * 10
    va = np.interp(np.log(target), np.log(s.i_c[a]), s.v_be[a])
    vb = np.interp(np.log(target), np.log(s.i_c[b]), s.v_be[b])
    return float(np.clip((va - vb) / (vs[-1] - vs[0]), 0.0, 0.49))


def fit_sweeps(s: Sweeps, cfg: FitConfig | None = None) -> FitResult:
    """Fit ``cfg.model`` to one device at one temperature (one or several V_sub curves)."""
    cfg = cfg or FitConfig()
    started = time.perf_counter()
    model = COMPACT_MODELS.get(cfg.model)
    names = model.names()
    n = len(names)
    joint = len(np.unique(s.v_sub)) > 1
    vsub_params = np.array([p.needs_vsub for p in model.params])
    rng = np.random.default_rng(cfg.seed)
    lo, hi = model.bounds()
    guess = model.guess(s.v_be, s.v_sub, s.temperature_k, s.i_c, s.i_b)
    if joint and vsub_params.any():
        guess[vsub_params] = _gamma_guess(model, s, guess)
    knee = np.array([nm in ("log10_ikf", "re") for nm in names])
    ideal = (s.i_c < IDEAL_FRACTION * s.i_c.max()) & (s.i_b < IDEAL_FRACTION * s.i_b.max() * 10)
    everything = np.ones_like(s.v_be, dtype=bool)
    best: tuple[float, np.ndarray] | None = None
    for k in range(cfg.starts):
        p0 = guess.copy()
        if k:
            logs = np.array([nm.startswith("log10_") for nm in names])
            p0[logs] += rng.uniform(-1.0, 1.0, logs.sum())
            p0[~logs] *= rng.uniform(0.8, 1.25, (~logs).sum())
            p0 = np.clip(p0, lo, hi)
        # stage 1: ideal region, no knee, no series resistance, no V_sub term
        p0[names.index("log10_ikf")] = hi[names.index("log10_ikf")]
        p0[names.index("re")] = 0.0
        free1 = ~knee & ~vsub_params  # γ (joint fits) starts from the curve shift, freed in stage 3
        p1, _ = _solve(model, s, p0, free1, ideal, cfg)
        # stage 2: all points, knee and RE free
        free2 = ~vsub_params
        p2, _ = _solve(model, s, p1, free2, everything, cfg)
        # stage 3: joint across V_sub, γ free
        p3 = _solve(model, s, p2, np.ones(n, dtype=bool), everything, cfg)[0] if joint else p2
        r = _residual_fn(model, s, p3, np.ones(n, dtype=bool), everything, cfg.rel_noise, False)(p3)
        cost = float(0.5 * r @ r)
        if best is None or cost < best[0]:
            best = (cost, p3)
    assert best is not None
    free = np.ones(n, dtype=bool) if joint else ~vsub_params
    p, res = _solve(model, s, best[1], free, everything, cfg, exact=True)
    stderr = np.full(n, np.nan)
    jac = np.asarray(res.jac)  # type: ignore[attr-defined]
    dof = max(len(res.fun) - int(free.sum()), 1)  # type: ignore[attr-defined]
    chi2 = float(res.fun @ res.fun) / dof  # type: ignore[attr-defined]
    cov = np.linalg.pinv(jac.T @ jac) * chi2
    stderr[free] = np.sqrt(np.maximum(np.diag(cov), 0.0))
    stderr[~free] = 0.0
    ic, ib = model.currents(p, s.v_be, s.v_sub, s.temperature_k)
    mc, mb = s.i_c > RMS_MARGIN * s.noise_floor_a, s.i_b > RMS_MARGIN * s.noise_floor_a
    dc = np.log10(ic[mc]) - np.log10(s.i_c[mc])
    db = np.log10(ib[mb]) - np.log10(s.i_b[mb])
    both = np.concatenate([dc, db])
    return FitResult(
        model=cfg.model,
        temperature_k=s.temperature_k,
        v_subs=sorted(float(v) for v in np.unique(s.v_sub)),
        names=names,
        values=p,
        stderr=stderr,
        rms_decades=float(np.sqrt(np.mean(both**2))),
        rms_decades_ic=float(np.sqrt(np.mean(dc**2))),
        n_points=int(mc.sum() + mb.sum()),
        cost=float(res.cost),  # type: ignore[attr-defined]
        seconds=time.perf_counter() - started,
        free=[nm for nm, f in zip(names, free, strict=True) if f],
    )


def sweeps_from_table(table: pa.Table, joint: bool = True) -> dict[tuple[str, float, float | None], Sweeps]:
    """Group ``gummel`` rows into fit inputs, compliance-clipped points left out.

    Keys are (device_id, T [K], V_sub) — V_sub is None for a joint fit across V_sub values
    (``joint=True``), the V_sub value for one fit per curve. Each key is one independent fit,
    which is the unit a Ray task will take."""
    rows = table.filter(pc.invert(table.column("clipped"))).to_pylist()
    groups: dict[tuple[str, float, float | None], list[dict[str, object]]] = {}
    for r in rows:
        key = (str(r["device_id"]), float(r["temperature_k"]), None if joint else float(r["v_sub"]))
        groups.setdefault(key, []).append(r)
    out: dict[tuple[str, float, float | None], Sweeps] = {}
    for key, rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0.0)):
        floors = [float(r["noise_floor_a"]) for r in rs if r["noise_floor_a"] is not None]  # type: ignore[arg-type]
        out[key] = Sweeps(
            v_be=np.array([r["v_be"] for r in rs], dtype=float),
            v_sub=np.array([r["v_sub"] for r in rs], dtype=float),
            i_c=np.array([r["i_c"] for r in rs], dtype=float),
            i_b=np.array([r["i_b"] for r in rs], dtype=float),
            temperature_k=key[1],
            noise_floor_a=max(floors) if floors else 1e-13,
        )
    return out
