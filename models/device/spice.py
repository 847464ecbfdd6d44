"""Write a fitted compact model as an ngspice subcircuit and sweep it in batch mode.

Why behavioural sources: ngspice 39's built-in Gummel–Poon BJT aborts at −269 °C ("Timestep
too small"), and its temperature scaling is not our effective-temperature physics. So the
subcircuit carries the model's own equations as B sources, with the thermal voltage of the
effective temperature (``vt``) as a subcircuit parameter: the simulator's temperature is never
used. Nodes: c b e sub; an internal emitter node ``ei`` behind RE makes the simulator solve
the same implicit V_BE = V_i + RE·(I_C + I_B) that ``CompactModel.currents`` solves.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from trustflow.errors import InputError
from trustflow.models.device.base import CompactModel

RE_MIN = 1e-6  # [ohm]: RE = 0 still needs a resistor between the internal and external emitter


def subckt_name(model: CompactModel | type[CompactModel], temperature_k: float) -> str:
    return f"lbjt_{model.name}_{re.sub(r'[^0-9a-z]', 'p', f'{temperature_k:g}k')}"


def subcircuit(model: type[CompactModel], p: np.ndarray, temperature_k: float, name: str | None = None) -> str:
    """The ``.subckt`` text of ``model`` with parameters ``p`` at ``temperature_k``."""
    name = name or subckt_name(model, temperature_k)
    values = model.spice_params(p, temperature_k)
    values["re"] = max(values["re"], RE_MIN)
    i_c, i_b = model.spice_expressions("V(b,ei)", "V(sub,e)")
    params = " ".join(f"{k}={v:.17g}" for k, v in sorted(values.items()))
    return "\n".join(
        [
            f"* trustflow {model.name} compact model fitted at T = {temperature_k:g} K",
            "* vt: thermal voltage of the effective temperature [V] (the simulator temperature is unused)",
            f".subckt {name} c b e sub params: {params}",
            f"Bc c ei I = {i_c}",
            f"Bb b ei I = {i_b}",
            "Re ei e {re}",
            f".ends {name}",
            "",
        ]
    )


def ngspice_gummel(
    model: type[CompactModel],
    p: np.ndarray,
    temperature_k: float,
    v_be: np.ndarray,
    v_sub: float,
    v_ce: float = 1.0,
    timeout_s: float = 60.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(I_C, I_B) [A] of the exported subcircuit from an ngspice batch DC sweep at ``v_be``
    (an evenly spaced grid), emitter grounded."""
    exe = shutil.which("ngspice")
    if exe is None:
        raise InputError("ngspice: not installed (make device-tools installs Debian's ngspice)")
    v_be = np.asarray(v_be, dtype=float)
    step = float(v_be[1] - v_be[0])
    name = subckt_name(model, temperature_k)
    with tempfile.TemporaryDirectory(prefix="trustflow-ngspice-") as tmp:
        out = Path(tmp) / "gummel.txt"
        deck = "\n".join(
            [
                f"* Gummel sweep of {name}",
                subcircuit(model, p, temperature_k, name),
                "Vb b 0 0",
                f"Vc c 0 {v_ce:.17g}",
                f"Vs s 0 {v_sub:.17g}",
                f"X1 c b 0 s {name}",
                ".options reltol=1e-7 abstol=1e-30 vntol=1e-12 gmin=1e-40",
                f".dc Vb {v_be[0]:.17g} {v_be[-1] + step / 2:.17g} {step:.17g}",
                ".control",
                "set wr_singlescale",
                "set wr_vecnames",
                "option numdgt=12",
                "run",
                f"wrdata {out} i(Vc) i(Vb)",
                ".endc",
                ".end",
                "",
            ]
        )
        (Path(tmp) / "gummel.cir").write_text(deck)
        proc = subprocess.run(
            [exe, "-b", "gummel.cir"], cwd=tmp, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        # batch mode with a .control block exits 1 ("no simulations run" for the deck itself):
        # the written sweep is the success signal
        if not out.exists():
            tail = (proc.stdout + proc.stderr)[-600:]
            raise InputError(f"ngspice: sweep of {name} failed (exit {proc.returncode}): {tail}")
        data = np.loadtxt(out, skiprows=1, ndmin=2)
    if len(data) < len(v_be):
        raise InputError(f"ngspice: {name} returned {len(data)} of {len(v_be)} sweep points")
    data = data[: len(v_be)]
    if not np.allclose(data[:, 0], v_be, atol=step * 1e-3):
        raise InputError(f"ngspice: {name} sweep points differ from the requested V_BE grid")
    return -data[:, 1], -data[:, 2]  # source currents flow into their + node: negate
