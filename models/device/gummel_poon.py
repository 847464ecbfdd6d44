"""Gummel–Poon-style baseline (the classic room-temperature compact model, our reduction).

    V_T  = k·T/q                                    lattice temperature, no saturation  [V]
    I_f  = 10^log10_is · exp(V_i/(n_f·V_T))         ideal transport current
    I_C  = 2·I_f / (1 + sqrt(1 + 4·I_f/I_KF))        high-injection roll-off (q_b)
    I_B  = I_f/β_F + 10^log10_ise · exp(V_i/(n_e·V_T))   ideal + non-ideal base current
    V_BE = V_i + RE·(I_C + I_B)

β(T) enters through a per-temperature fit of β_F. It has no substrate-bias term, which is the
point of the comparison: a joint fit across V_sub has one curve for all V_sub values and its
residuals grow with V_sub (tests/unit/test_device_fit.py). n_f may rise far above 1 at 4 K —
that is how the baseline absorbs the saturated slope, at the price of unphysical values.
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


@COMPACT_MODELS.register("gummel_poon")
class GummelPoon(CompactModel):
    params: ClassVar[tuple[Param, ...]] = (
        Param("log10_is", "log10 A", -3000.0, -8.0, "transport saturation current"),
        Param("n_f", "1", 0.8, 40.0, "forward ideality"),
        Param("log10_ikf", "log10 A", -9.0, -1.0, "high-injection knee current"),
        Param("re", "ohm", 0.0, 1e5, "emitter series resistance"),
        Param("beta_f", "1", 0.01, 1e4, "ideal forward current gain"),
        Param("log10_ise", "log10 A", -3000.0, -8.0, "non-ideal base saturation current"),
        Param("n_e", "1", 0.8, 80.0, "non-ideal base ideality"),
    )

    @classmethod
    def intrinsic(
        cls, p: np.ndarray, v_i: np.ndarray, v_sub: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        vt = thermal_voltage(t)
        lis, n_f, likf, _re, beta_f, lise, n_e = p
        i_f = exp_clipped(lis * LN10 + v_i / (n_f * vt))
        i_c = high_injection(exp_clipped((lis - likf) * LN10 + v_i / (n_f * vt)), 10.0**likf)
        i_b = i_f / beta_f + exp_clipped(lise * LN10 + v_i / (n_e * vt))
        return i_c, i_b

    @classmethod
    def guess(cls, v_be: np.ndarray, v_sub: np.ndarray, t: float, i_c: np.ndarray, i_b: np.ndarray) -> np.ndarray:
        vt = float(thermal_voltage(t))
        top = float(i_c.max())
        e_fold, ln0 = slope_guess(v_be, i_c, top * 1e-5, top * 1e-2)
        n_f = float(np.clip(e_fold / vt, 0.85, 39.0))
        beta = float(np.clip(np.median(i_c / np.maximum(i_b, 1e-300)), 0.02, 9e3))
        e_b, ln_b = slope_guess(v_be, i_b, float(i_b.max()) * 1e-6, float(i_b.max()) * 1e-3)
        n_e = float(np.clip(e_b / vt, 0.85, 79.0))
        return np.array(
            [max(ln0 / LN10, -2999.0), n_f, np.log10(top) + 0.3, 10.0, beta, max(ln_b / LN10 - 1, -2999.0), n_e]
        )

    @classmethod
    def spice_params(cls, p: np.ndarray, t: float) -> dict[str, float]:
        out = super().spice_params(p, t)
        out["vt"] = float(thermal_voltage(t))
        for key in ("log10_is", "log10_ikf", "log10_ise"):
            out["ln_" + key[6:]] = out.pop(key) * LN10
        return out

    @classmethod
    def spice_expressions(cls, vbe: str, vsub: str) -> tuple[str, str]:
        i_f = f"exp(ln_is + {vbe}/(n_f*vt))"
        i_c = f"2*{i_f}/(1 + sqrt(1 + 4*{i_f}/exp(ln_ikf)))"
        i_b = f"{i_f}/beta_f + exp(ln_ise + {vbe}/(n_e*vt))"
        return i_c, i_b
