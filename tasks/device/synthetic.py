"""Synthetic lab: Gummel sweeps of a lateral BJT from known 4 K-model parameters, seeded.

Why: no published Gummel data of SOI LBJTs at 4 K is available (shared notes), and a fitter is
only checkable against a known truth. The generator mimics an SMU measurement: a V_BE staircase
chosen per (T, V_sub) to span from below the instrument noise floor to the compliance limit,
additive Gaussian noise at the floor (~1e-13 A), relative noise, and clipping at compliance.
Temperature laws (our choices, documented in docs/pipelines/device-models.md): saturation
currents follow a band-gap activation at T_eff, the tunnelling prefactor varies weakly
(linearly) with T, everything else is T-independent.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from trustflow.models.device.base import K_B_OVER_Q, LN10
from trustflow.models.device.cryo4k import Cryo4K, effective_temperature
from trustflow.registry import Options


class DeviceTruth(Options):
    """Known parameters of one synthetic device (values at 300 K plus temperature laws)."""

    device_id: str = "lbjt-w1-l0p1"
    width_um: float = Field(default=1.0, gt=0)
    length_um: float = Field(default=0.1, gt=0)  # base length (lateral)
    log10_isb_300: float = -16.0  # [log10 A] BOX-interface saturation current at 300 K
    eg_box: float = 1.12  # [eV] activation of the BOX current (silicon band gap)
    n_box: float = 1.05
    gamma: float = 0.004  # back-gate coupling
    log10_it_300: float = -23.0  # [log10 A] tunnelling prefactor at 300 K
    it_tempco: float = 0.3  # relative change of the tunnelling prefactor from 0 to 300 K
    v_tun: float = 0.035  # [V per e-fold]
    log10_ikf: float = -4.0
    re: float = 200.0  # [ohm]
    log10_ibs_300: float = -16.5
    eg_base: float = 1.12  # [eV]; with n_b > n_box, β falls at low T (the cryogenic β collapse)
    n_b: float = 1.15
    t0: float = 30.0  # [K]

    def vector(self, t: float) -> np.ndarray:
        """Cryo4K parameter vector at lattice temperature ``t`` [K]."""
        te = float(effective_temperature(t, self.t0))

        def act(l300: float, eg: float, n: float) -> float:
            # I_s ∝ T^3·exp(-E_g/(n·k·T_eff)): the activation carries the ideality, so both
            # terms meet near V_BE ≈ E_g/q at every temperature
            return l300 + (3.0 * np.log(te / 300.0) - eg / (n * K_B_OVER_Q) * (1.0 / te - 1.0 / 300.0)) / LN10

        lit = self.log10_it_300 + np.log10(1.0 - self.it_tempco * (1.0 - t / 300.0))
        return np.array(
            [
                act(self.log10_isb_300, self.eg_box, self.n_box),
                self.n_box,
                self.gamma,
                lit,
                self.v_tun,
                self.log10_ikf,
                self.re,
                act(self.log10_ibs_300, self.eg_base, self.n_b),
                self.n_b,
            ]
        )


class LabConfig(Options):
    """The instrument: noise floor, relative noise, compliance, points per sweep."""

    noise_floor_a: float = Field(default=1e-13, gt=0)
    rel_noise: float = Field(default=0.01, ge=0)
    compliance_a: float = Field(default=1e-3, gt=0)
    points: int = Field(default=100, ge=5)  # per sweep, spread over floor → compliance (beyond: clipped)
    v_ce: float = 1.0
    seed: int = 0


def _v_window(truth: DeviceTruth, lab: LabConfig, t: float, v_sub: float) -> np.ndarray:
    """V_BE points from where I_C meets the noise floor to where it reaches compliance (a few
    extra points past it, so clipping is exercised)."""
    p = truth.vector(t)
    grid = np.arange(0.0, 1.6, 0.0005)
    ic, _ = Cryo4K.currents(p, grid, v_sub, t)
    lo = grid[np.argmax(ic > lab.noise_floor_a * 0.3)]
    over = ic > lab.compliance_a
    hi = grid[int(np.argmax(over))] if over.any() else grid[-1]
    hi += 0.04 * (hi - lo)  # a few points past compliance: clipping is part of a real sweep
    return np.linspace(lo, hi, lab.points)


def gummel_rows(
    truth: DeviceTruth, lab: LabConfig, temperatures: list[float], v_subs: list[float]
) -> list[dict[str, Any]]:
    """Rows in the ``gummel`` measurement layout (data/device/gummel.py), one per V_BE point."""
    key = f"{truth.model_dump_json()}|{lab.seed}".encode()
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
    rows: list[dict[str, Any]] = []
    for t in temperatures:
        p = truth.vector(t)
        for v_sub in v_subs:
            v = _v_window(truth, lab, t, v_sub)
            ic, ib = Cryo4K.currents(p, v, v_sub, t)
            out = []
            for i in (ic, ib):
                noisy = i * (1.0 + lab.rel_noise * rng.standard_normal(i.shape))
                noisy = noisy + lab.noise_floor_a * rng.standard_normal(i.shape)
                noisy = np.abs(noisy)  # an SMU reports magnitudes near the floor; never zero
                out.append(np.minimum(np.maximum(noisy, lab.noise_floor_a * 0.01), lab.compliance_a))
            for k in range(len(v)):
                rows.append(
                    {
                        "device_id": truth.device_id,
                        "width_um": truth.width_um,
                        "length_um": truth.length_um,
                        "temperature_k": float(t),
                        "v_be": float(v[k]),
                        "v_ce": lab.v_ce,
                        "v_cb": None,
                        "v_sub": float(v_sub),
                        "i_c": float(out[0][k]),
                        "i_b": float(out[1][k]),
                        "compliance_a": lab.compliance_a,
                        "noise_floor_a": lab.noise_floor_a,
                    }
                )
    return rows


CSV_FIELDS = ["device_id", "width_um", "length_um", "temperature_k", "v_be", "v_ce", "v_cb", "v_sub", "i_c", "i_b"]
CSV_FIELDS += ["compliance_a", "noise_floor_a"]


def write_lab_csv(
    path: Path, truth: DeviceTruth, lab: LabConfig, temperatures: list[float], v_subs: list[float]
) -> Path:
    """The synthetic sweeps as a lab would hand them over: one CSV in the ``gummel`` layout
    (empty cells for unset columns; floats written at full precision). Written whole, then
    renamed, so a watcher never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in gummel_rows(truth, lab, temperatures, v_subs):
            w.writerow({k: "" if r.get(k) is None else r[k] for k in CSV_FIELDS})
    tmp.replace(path)
    return path
