"""Report sections of the ``device_fit`` flow: a run's page (joint fits, baseline comparison,
plots) and its part of the combined leaderboard. The numbers are the stored fits stage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trustflow import names
from trustflow.data import schemas as S
from trustflow.tasks.device.stages import BETA_PNG, GUMMEL_PNG, RESIDUALS_PNG, baseline_ratios, order
from trustflow.tasks.report.html import Column, Html, Section, heading, join, key_figures, note, table
from trustflow.tasks.report.sections import (
    BOARD_SECTIONS,
    RUN_SECTIONS,
    RunView,
    per_run_boards,
    plots_section,
    unknown_stages,
)

STAGES = {names.FITS: S.DEVICE_FITS}
DEVICE_PLOTS = {
    GUMMEL_PNG: "Measured (markers) vs fitted (lines) Gummel curves, log I against V_BE, a panel per device and T, a colour per V_sub",
    BETA_PNG: "Current gain β = I_C/I_B against I_C, measured vs fitted, a panel per T",
    RESIDUALS_PNG: "I_C residuals (decades) of the 4 K model and the Gummel–Poon baseline side by side, at the lowest T with V_sub > 0",
}
FIT_COLUMNS = [
    Column("device_id", "device"),
    Column("temperature_k", "T [K]", "g"),
    Column("model"),
    Column("v_subs", "V_sub [V]"),
    Column("rms_decades", "RMS [decades]", ".4f"),
    Column("ic_decades", "I_C decades", ".1f"),
    Column("n_points", "points used"),
    Column("n_excluded", "excluded"),
]
RATIO_COLUMNS = [
    Column("device_id", "device"),
    Column("temperature_k", "T [K]", "g"),
    Column("cryo4k", "4 K model RMS", ".4f"),
    Column("gummel_poon", "Gummel–Poon RMS", ".3f"),
    Column("ratio", "baseline / 4 K model", ".1f"),
]
ABOUT = (
    "Joint fits: every V_sub curve of a (device, T) at once. RMS: unweighted RMS of log10(I fitted / measured) "
    "over I_C and I_B points above 10× the noise floor. Excluded: compliance-clipped points and currents below "
    "3× the noise floor (I_C and I_B counted apart). Per-curve fits are in the fits stage."
)


def _joint_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "v_subs": ", ".join(f"{v:g}" for v in r["v_subs"])} for r in order(rows) if r["v_sub"] is None]


def parameter_tables(joint: Sequence[Mapping[str, Any]]) -> list[Html]:
    """Per model, one row per joint fit and a column per parameter: value ± standard error
    (± 0: held fixed)."""
    out: list[Html] = []
    for model in sorted({r["model"] for r in joint}):
        rs = [r for r in joint if r["model"] == model]
        cols = [Column("device_id", "device"), Column("temperature_k", "T [K]", "g")]
        cols += [Column(f"{n}", f"{n} [{u}]") for n, u in zip(rs[0]["param_names"], rs[0]["units"], strict=True)]
        cells = [
            {
                "device_id": r["device_id"],
                "temperature_k": r["temperature_k"],
                **{n: f"{v:.4g} ± {e:.2g}" for n, v, e in zip(r["param_names"], r["values"], r["stderr"], strict=True)},
            }
            for r in rs
        ]
        out += [heading(3, f"{model}: fitted parameters"), table(cells, cols)]
    return out


@RUN_SECTIONS.register(names.DEVICE_FIT)
def device_sections(run: RunView) -> list[Section]:
    """Key figures, the joint fits, the baseline comparison and the plots."""
    sections: list[Section] = []
    if run.has(names.FITS, S.DEVICE_FITS):
        rows = run.rows(names.FITS)
        joint = _joint_rows(rows)
        ratios = baseline_ratios(rows)
        main = [r for r in joint if r["model"] == "cryo4k"] or joint
        figures: list[tuple[str, Any, str]] = [
            ("Fits", len(rows), f"{len(joint)} joint"),
            ("Devices", len({r["device_id"] for r in rows}), f"{len({r['temperature_k'] for r in rows})} temperatures"),
        ]
        if main:
            worst = max(main, key=lambda r: r["rms_decades"])
            figures.append(
                ("Worst RMS", f"{worst['rms_decades']:.4f} dec", f"{worst['model']} at {worst['temperature_k']:g} K")
            )
        body: list[Html] = [key_figures(figures), note(ABOUT), table(joint, FIT_COLUMNS), *parameter_tables(joint)]
        if ratios:
            body += [heading(3, "Gummel–Poon baseline vs the 4 K model"), table(ratios, RATIO_COLUMNS)]
        sections.append(Section("Device-model fits", join(body)))
    return sections + plots_section(run, DEVICE_PLOTS) + unknown_stages(run, STAGES)


@BOARD_SECTIONS.register(names.DEVICE_FIT)
def device_board(runs: list[RunView]) -> list[Section]:
    """Each run's joint fits, newest first."""
    return per_run_boards(
        runs,
        S.DEVICE_FITS,
        names.FLOW_TITLES[names.DEVICE_FIT],
        "no device_fit run in this store",
        lambda run: (None, table(_joint_rows(run.rows(names.FITS)), FIT_COLUMNS)),
        stage=names.FITS,
    )
