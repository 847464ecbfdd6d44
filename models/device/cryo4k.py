"""The 4 K SOI lateral-BJT model: I_C = I_tun + I_BOX(V_sub), I_B independent of V_sub.

The split of I_C into a tunnelling current and a BOX/Si-interface current raised by a positive
substrate bias follows the abstract of arXiv 2309.09257 (Zhang et al.); the paper's equations
could not be read, so every functional form below is our device-physics choice (see
docs/pipelines/device-models.md):

    T_eff   = (T^4 + T0^4)^(1/4)                     saturating effective temperature [K]
    V_T     = k·T_eff/q                               [V]
    I_tun   = 10^log10_it · exp(V_i / v_tun)          slope set by v_tun [V], not by T
    I_BOX   = 10^log10_isb · exp((V_i + γ·V_sub)/(n_box·V_T))
    I_C     = 2·I_f / (1 + sqrt(1 + 4·I_f/I_KF)),  I_f = I_tun + I_BOX   (high injection)
    I_B     = 10^log10_ibs · exp(V_i/(n_b·V_T))
    V_BE    = V_i + RE·(I_C + I_B)

The fitted quantities are per temperature (one fit per device and T); T0 is a fixed option of
the fit (default 30 K), because at one temperature only n·T_eff is observable.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from trustflow.models.device.base import (
    COMPACT_MODELS,
    LN10,
    CompactModel,
    Param,
    exp_clipped,
    high_injection,
    slope_guess,
    thermal_voltage,
)

T0_DEFAULT = 30.0  # [K] saturation of T_eff (the non-ideal slope seen at 4 K), our choice


def effective_temperature(t: np.ndarray | float, t0: float = T0_DEFAULT) -> np.ndarray:
    """(T^4 + T0^4)^(1/4): T above ~2·T0, T0 as T → 0 (a smooth floor on the ideal slope)."""
    t = np.asarray(t, dtype=float)
    return np.asarray((t**4 + t0**4) ** 0.25)


@COMPACT_MODELS.register("cryo4k")
class Cryo4K(CompactModel):
    t0: ClassVar[float] = T0_DEFAULT
    params: ClassVar[tuple[Param, ...]] = (
        Param("log10_isb", "log10 A", -400.0, -8.0, "BOX-interface saturation current"),
        Param("n_box", "1", 0.8, 4.0, "ideality of the BOX-interface current"),
        Param("gamma", "1", 0.0, 0.5, "back-gate coupling ≈ C_BOX/(C_BOX + C_Si)", needs_vsub=True),
        Param("log10_it", "log10 A", -60.0, -6.0, "tunnelling prefactor"),
        Param("v_tun", "V", 0.005, 0.2, "tunnelling slope (volts per e-fold)"),
        Param("log10_ikf", "log10 A", -9.0, -1.0, "high-injection knee current"),
        Param("re", "ohm", 0.0, 1e5, "emitter series resistance"),
        Param("log10_ibs", "log10 A", -400.0, -8.0, "base saturation current"),
        Param("n_b", "1", 0.8, 4.0, "base-current ideality"),
    )

    @classmethod
    def intrinsic(
        cls, p: np.ndarray, v_i: np.ndarray, v_sub: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        vt = thermal_voltage(effective_temperature(t, cls.t0))
        lisb, n_box, gamma, lit, v_tun, likf, _re, libs, n_b = p
        x_tun = exp_clipped((lit - likf) * LN10 + v_i / v_tun)  # I_tun / I_KF
        x_box = exp_clipped((lisb - likf) * LN10 + (v_i + gamma * v_sub) / (n_box * vt))  # I_BOX / I_KF
        i_c = high_injection(x_tun + x_box, 10.0**likf)
        i_b = exp_clipped(libs * LN10 + v_i / (n_b * vt))
        return i_c, i_b

    @classmethod
    def guess(cls, v_be: np.ndarray, v_sub: np.ndarray, t: float, i_c: np.ndarray, i_b: np.ndarray) -> np.ndarray:
        """BOX term from the steep upper-middle of the lowest-V_sub I_C curve, tunnelling term
        from its low-current tail, knee from the largest current, base term from I_B."""
        vt = float(thermal_voltage(effective_temperature(t, cls.t0)))
        sel = v_sub == v_sub.min()
        v, ic = v_be[sel], i_c[sel]
        top = float(ic.max())
        e_fold, ln0 = slope_guess(v, ic, top * 1e-5, top * 1e-2)
        n_box = float(np.clip(e_fold / vt, 0.85, 3.9))
        lisb = (ln0 - 0.0) / LN10
        floor = float(np.quantile(ic, 0.1))
        e_t, ln_t = slope_guess(v, ic, floor, floor * 30.0)
        v_tun = float(np.clip(max(e_t, 2.0 * e_fold), 0.006, 0.19))
        lit = float(np.clip(ln_t / LN10, -59.0, -7.0))
        e_b, ln_b = slope_guess(v_be, i_b, float(i_b.max()) * 1e-5, float(i_b.max()) * 1e-2)
        n_b = float(np.clip(e_b / vt, 0.85, 3.9))
        return np.array(
            [
                np.clip(lisb, -399, -9),
                n_box,
                0.01,
                lit,
                v_tun,
                np.log10(top) + 0.3,
                10.0,
                np.clip(ln_b / LN10, -399, -9),
                n_b,
            ]
        )

    @classmethod
    def spice_params(cls, p: np.ndarray, t: float) -> dict[str, float]:
        """Saturation currents as natural logs (ngspice cannot hold 1e-180) and the effective
        thermal voltage at ``t`` as a plain parameter, so the simulator's temperature is unused."""
        out = super().spice_params(p, t)
        out["vt"] = float(thermal_voltage(effective_temperature(t, cls.t0)))
        for key in ("log10_isb", "log10_it", "log10_ikf", "log10_ibs"):
            out["ln_" + key[6:]] = out.pop(key) * LN10
        return out

    @classmethod
    def spice_expressions(cls, vbe: str, vsub: str) -> tuple[str, str]:
        i_f = f"(exp(ln_it + {vbe}/v_tun) + exp(ln_isb + ({vbe} + gamma*{vsub})/(n_box*vt)))"
        i_c = f"2*{i_f}/(1 + sqrt(1 + 4*{i_f}/exp(ln_ikf)))"
        i_b = f"exp(ln_ibs + {vbe}/(n_b*vt))"
        return i_c, i_b
