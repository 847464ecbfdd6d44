"""The compact-model contract and registry, plus the shared emitter-resistance solve.

A compact model is one module in this package with ``@COMPACT_MODELS.register("<name>")`` on a
``CompactModel`` subclass. A model is a *pure function* of a parameter vector, the terminal
biases and the lattice temperature, so a fit (tasks/device/fit.py) can call it from any Ray
worker, and its SPICE export (``spice.py``) writes the same equations as behavioural sources.

Why a parameter *vector* with a name/unit/bounds table rather than keyword arguments: the
least-squares fitter works on vectors, the uncertainty table is indexed by the same names, and
the log10 saturation currents (``log10_*``) keep currents of 1e-180 A at 4 K representable and
well scaled for the optimiser. Units: volts, amperes, ohms, kelvin throughout.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from trustflow.registry import Registry

K_B_OVER_Q = 8.617333262e-5  # Boltzmann constant / elementary charge [V/K]
LN10 = float(np.log(10.0))
MAX_EXP = 700.0  # exponent clip: keeps exp() finite in float64 while the optimiser explores


@dataclass(frozen=True)
class Param:
    """One model parameter: name, unit, physical bounds, and whether a single V_sub curve
    determines it (``needs_vsub``: the back-gate coupling is only seen across V_sub values)."""

    name: str
    unit: str
    lower: float
    upper: float
    doc: str
    needs_vsub: bool = False


def exp_clipped(x: np.ndarray) -> np.ndarray:
    return np.exp(np.minimum(x, MAX_EXP))


def high_injection(x: np.ndarray, ikf: float) -> np.ndarray:
    """Gummel–Poon roll-off I_C = 2·I_f/(1 + sqrt(1 + 4·I_f/I_KF)), written in x = I_f/I_KF
    (each term computed as one clipped exponential) so that I_f ≫ I_KF cannot overflow."""
    return np.asarray(ikf * 2.0 * x / (1.0 + np.sqrt(1.0 + 4.0 * x)))


def thermal_voltage(t_eff: np.ndarray | float) -> np.ndarray:
    """kT/q [V] at an (effective) temperature [K]."""
    return np.asarray(K_B_OVER_Q * np.asarray(t_eff, dtype=float))


class CompactModel(ABC):
    """I_C and I_B of an npn lateral BJT at V_CE (or V_CB) fixed, emitter grounded.

    Subclasses define ``params`` and ``intrinsic`` (the currents at the *internal* base-emitter
    voltage); :meth:`currents` adds the emitter series resistance RE by solving
    V_BE = V_i + RE·(I_C + I_B) for V_i, which is what SPICE does with an internal node."""

    name: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]

    @classmethod
    def names(cls) -> list[str]:
        return [p.name for p in cls.params]

    @classmethod
    def bounds(cls) -> tuple[np.ndarray, np.ndarray]:
        return np.array([p.lower for p in cls.params]), np.array([p.upper for p in cls.params])

    @classmethod
    def index(cls, name: str) -> int:
        return cls.names().index(name)

    @classmethod
    @abstractmethod
    def intrinsic(
        cls, p: np.ndarray, v_i: np.ndarray, v_sub: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(I_C, I_B) [A] at internal V_BE ``v_i`` [V], substrate bias [V], temperature [K]."""

    @classmethod
    @abstractmethod
    def guess(cls, v_be: np.ndarray, v_sub: np.ndarray, t: float, i_c: np.ndarray, i_b: np.ndarray) -> np.ndarray:
        """A physics-based start vector from the measured curves (slopes, intercepts, knees)."""

    @classmethod
    @abstractmethod
    def spice_expressions(cls, vbe: str, vsub: str) -> tuple[str, str]:
        """ngspice B-source expressions (I_C, I_B) in the model's parameter names."""

    @classmethod
    def spice_params(cls, p: np.ndarray, t: float) -> dict[str, float]:
        """``.param`` values for the subcircuit (defaults: the vector itself)."""
        return dict(zip(cls.names(), (float(x) for x in p), strict=True))

    @classmethod
    def currents(
        cls, p: np.ndarray, v_be: np.ndarray, v_sub: np.ndarray | float, t: np.ndarray | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Terminal (I_C, I_B) [A]: bisection on the internal voltage (monotone in V_i, so it
        always converges; 40 halvings of a 2 V bracket reach 2e-12 V, i.e. 1e-9 relative
        current even at the 4 K slope of a few mV per e-fold)."""
        v_be = np.asarray(v_be, dtype=float)
        v_sub = np.broadcast_to(np.asarray(v_sub, dtype=float), v_be.shape)
        t = np.broadcast_to(np.asarray(t, dtype=float), v_be.shape)
        re = float(p[cls.index("re")])
        if re <= 0:
            return cls.intrinsic(p, v_be, v_sub, t)
        lo, hi = v_be - 2.0, v_be.copy()
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            ic, ib = cls.intrinsic(p, mid, v_sub, t)
            over = mid + re * (ic + ib) > v_be
            hi = np.where(over, mid, hi)
            lo = np.where(over, lo, mid)
        return cls.intrinsic(p, 0.5 * (lo + hi), v_sub, t)


COMPACT_MODELS: Registry[type[CompactModel]] = Registry("compact model", plugins="trustflow.models.device")


def slope_guess(v: np.ndarray, i: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """(volts per e-fold, ln I at V=0) from a straight line through log I where lo < I < hi;
    the starting point of every exponential term (the classic Gummel-plot extraction)."""
    mask = (i > lo) & (i < hi)
    if mask.sum() < 2:
        mask = i > 0
    slope, icpt = np.polyfit(v[mask], np.log(i[mask]), 1)
    slope = max(float(slope), 1.0)
    return 1.0 / slope, float(icpt)
