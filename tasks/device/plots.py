"""Plots of a device_fit run (PNG bytes, written beside the fits): measured vs fitted Gummel
curves, current gain β against I_C, and the residuals of the 4 K model beside the Gummel–Poon
baseline's — the figure that shows where the baseline fails (V_sub > 0 at low T), not a claim.

The fitted curves are the joint fits (all V_sub curves of a (device, T) at once), evaluated
with the exact emitter-resistance solve on a fine V_BE grid over the measured range.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MAX_DEVICES = 3  # rows of the Gummel figure: a lab's first few devices (the table has them all)


def _figure(rows: int, cols: int, width: float = 3.6, height: float = 3.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        max(rows, 1), max(cols, 1), figsize=(width * max(cols, 1) + 1.0, height * max(rows, 1)), squeeze=False
    )
    return fig, axes


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _curve(meas: Sequence[Mapping[str, Any]], device: str, t: float, v_sub: float) -> dict[str, np.ndarray]:
    rs = sorted(
        (
            r
            for r in meas
            if r["device_id"] == device and r["temperature_k"] == t and r["v_sub"] == v_sub and not r["clipped"]
        ),
        key=lambda r: r["v_be"],
    )
    return {k: np.array([r[k] for r in rs], dtype=float) for k in ("v_be", "i_c", "i_b")}


def _joint(rows: Sequence[Mapping[str, Any]], device: str, t: float, model: str) -> Mapping[str, Any] | None:
    return next(
        (
            r
            for r in rows
            if r["device_id"] == device and r["temperature_k"] == t and r["v_sub"] is None and r["model"] == model
        ),
        None,
    )


def _model_currents(fit: Mapping[str, Any], v: np.ndarray, v_sub: float) -> tuple[np.ndarray, np.ndarray]:
    from trustflow.models.device.base import COMPACT_MODELS

    model = COMPACT_MODELS.get(fit["model"])
    return model.currents(np.asarray(fit["values"], dtype=float), v, v_sub, fit["temperature_k"])


def _main_model(rows: Sequence[Mapping[str, Any]]) -> str:
    models = {r["model"] for r in rows}
    return "cryo4k" if "cryo4k" in models else min(models, default="cryo4k")


def _grid(meas: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[float], list[float]]:
    devices = sorted({r["device_id"] for r in meas})[:MAX_DEVICES]
    temps = sorted({float(r["temperature_k"]) for r in meas})
    v_subs = sorted({float(r["v_sub"]) for r in meas})
    return devices, temps, v_subs


def gummel_plot(meas: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> bytes:
    """log I_C (dots) and I_B (crosses) against V_BE, measured, with the joint fit of the 4 K
    model as lines; a panel per (device, T), a colour per V_sub."""
    import matplotlib.pyplot as plt

    devices, temps, v_subs = _grid(meas)
    main = _main_model(rows)
    fig, axes = _figure(len(devices), len(temps))
    floor = min((r["noise_floor_a"] or 1e-13) for r in meas) if meas else 1e-13
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(v_subs), 1)))
    for i, d in enumerate(devices):
        for j, t in enumerate(temps):
            ax = axes[i][j]
            fit = _joint(rows, d, t, main)
            for c, vs in zip(colours, v_subs, strict=False):
                m = _curve(meas, d, t, vs)
                if not m["v_be"].size:
                    continue
                ax.semilogy(m["v_be"], m["i_c"], ".", color=c, ms=3, label=f"V_sub {vs:g} V")
                ax.semilogy(m["v_be"], m["i_b"], "x", color=c, ms=3)
                if fit is not None:
                    v = np.linspace(m["v_be"].min(), m["v_be"].max(), 120)
                    ic, ib = _model_currents(fit, v, vs)
                    ax.semilogy(v, ic, "-", color=c, lw=1)
                    ax.semilogy(v, ib, "--", color=c, lw=1)
            ax.set_ylim(bottom=0.1 * floor)  # below the noise floor the model is not measured
            ax.set_title(f"{d} · {t:g} K", fontsize=9)
            ax.set_xlabel("V_BE [V]")
            ax.set_ylabel("I_C (·), I_B (×) [A]")
    if devices and temps:
        axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Gummel plots: measured (markers) vs {main} joint fit (lines)", fontsize=10)
    return _png(fig)


def beta_plot(meas: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Current gain β = I_C/I_B against I_C (log x) for the first device: measured points and
    the fitted model, a panel per T, a colour per V_sub (V_sub raises β at low T)."""
    import matplotlib.pyplot as plt

    devices, temps, v_subs = _grid(meas)
    main = _main_model(rows)
    fig, axes = _figure(1, len(temps))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(v_subs), 1)))
    for j, t in enumerate(temps):
        ax = axes[0][j]
        if not devices:
            continue
        fit = _joint(rows, devices[0], t, main)
        floor = 10 * min((r["noise_floor_a"] or 1e-13) for r in meas)
        for c, vs in zip(colours, v_subs, strict=False):
            m = _curve(meas, devices[0], t, vs)
            ok = (m["i_c"] > floor) & (m["i_b"] > floor)
            if not ok.any():
                continue
            ax.loglog(m["i_c"][ok], m["i_c"][ok] / m["i_b"][ok], ".", color=c, ms=3, label=f"V_sub {vs:g} V")
            if fit is not None:
                v = np.linspace(m["v_be"][ok].min(), m["v_be"][ok].max(), 120)
                ic, ib = _model_currents(fit, v, vs)
                ax.loglog(ic, ic / ib, "-", color=c, lw=1)
        ax.set_title(f"{devices[0]} · {t:g} K", fontsize=9)
        ax.set_xlabel("I_C [A]")
        ax.set_ylabel("β = I_C / I_B")
    if temps:
        axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"Current gain: measured (dots) vs {main} (lines)", fontsize=10)
    return _png(fig)


def residuals_plot(meas: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> bytes:
    """log10(I_C fitted / measured) against V_BE, one panel per model side by side (4 K model,
    then the Gummel–Poon baseline), at the lowest temperature that has a V_sub > 0 curve, for
    the first device; each panel's title carries its RMS in decades."""
    import matplotlib.pyplot as plt

    devices, temps, v_subs = _grid(meas)
    models = [m for m in ("cryo4k", "gummel_poon") if any(r["model"] == m for r in rows)] or [_main_model(rows)]
    fig, axes = _figure(1, len(models), width=4.4)
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(v_subs), 1)))
    if devices:
        d = devices[0]
        with_vsub = [
            t for t in temps if any(r["device_id"] == d and r["temperature_k"] == t and r["v_sub"] > 0 for r in meas)
        ]
        t = (with_vsub or temps)[0]
        floor = 10 * min((r["noise_floor_a"] or 1e-13) for r in meas)
        for ax, model in zip(axes[0], models, strict=False):
            fit = _joint(rows, d, t, model)
            if fit is None:
                continue
            for c, vs in zip(colours, v_subs, strict=False):
                m = _curve(meas, d, t, vs)
                ok = m["i_c"] > floor
                if not ok.any():
                    continue
                ic, _ = _model_currents(fit, m["v_be"][ok], vs)
                ax.plot(
                    m["v_be"][ok], np.log10(ic / m["i_c"][ok]), ".-", color=c, ms=3, lw=0.6, label=f"V_sub {vs:g} V"
                )
            ax.axhline(0.0, color="k", lw=0.5)
            ax.set_title(f"{model} at {t:g} K: RMS {fit['rms_decades']:.3f} decades", fontsize=9)
            ax.set_xlabel("V_BE [V]")
            ax.set_ylabel("log10(I_C fit / measured)")
        axes[0][-1].legend(fontsize=7)
    fig.suptitle("I_C residuals of the joint fits across V_sub", fontsize=10)
    return _png(fig)


__all__ = ["beta_plot", "gummel_plot", "residuals_plot"]
