"""Mean Corruption Error (Hendrycks & Dietterich 2019).

Errors are fractions in [0, 1] (1 - accuracy). For corruption ``c`` and severities ``s``:

* **CE** (``corruption_errors``): CE_c = Σ_s E_{s,c} / Σ_s E^{AlexNet}_{s,c}. The AlexNet
  reference below is given per corruption as its mean over the five severities, so this is
  computed as CE_c = mean_s E_{s,c} / ALEXNET_ERRORS[c] (equal to the ratio of sums when the
  model is measured at all five severities). mCE is the mean of CE_c over corruptions.
  AlexNet's numbers are ImageNet-C's: dividing by them is only meaningful for ImageNet-C.
* **relative CE** (``relative_mce``): CE^rel_c = Σ_s (E_{s,c} − E_clean) / Σ_s (E^ref_{s,c} −
  E^ref_clean), against a baseline model measured in the same run: the measure for
  datasets with no AlexNet reference (CIFAR-10-C-style sets, digits).

Errors are passed as ``{corruption: {severity: error}}`` (or ``{corruption: [e1, ..., e5]}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from trustflow.errors import ConfigError

ALEXNET_ERRORS: dict[str, float] = {
    "gaussian_noise": 0.886428,
    "shot_noise": 0.894468,
    "impulse_noise": 0.922640,
    "defocus_blur": 0.819880,
    "glass_blur": 0.826268,
    "motion_blur": 0.785948,
    "zoom_blur": 0.798360,
    "snow": 0.866816,
    "frost": 0.826572,
    "fog": 0.819324,
    "brightness": 0.564592,
    "contrast": 0.853204,
    "elastic_transform": 0.646056,
    "pixelate": 0.717840,
    "jpeg_compression": 0.606500,
}
"""AlexNet's ImageNet-C top-1 error per corruption, averaged over severities 1–5."""

SeverityErrors = Mapping[int, float] | Sequence[float]
ErrorTable = Mapping[str, SeverityErrors]


def _by_severity(errors: SeverityErrors, corruption: str) -> dict[int, float]:
    table = dict(errors) if isinstance(errors, Mapping) else {i + 1: e for i, e in enumerate(errors)}
    if not table:
        raise ConfigError(f"no errors for corruption {corruption!r}")
    for severity, err in table.items():
        if not 0.0 <= float(err) <= 1.0:
            raise ConfigError(f"error {err!r} for {corruption} severity {severity} is not a fraction in [0, 1]")
    return {int(s): float(e) for s, e in table.items()}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def corruption_errors(errors: ErrorTable, reference: Mapping[str, float] = ALEXNET_ERRORS) -> dict[str, float]:
    """CE_c = mean_s E_{s,c} / reference[c] for every corruption in ``errors``."""
    out: dict[str, float] = {}
    for corruption, per_severity in errors.items():
        if corruption not in reference:
            raise ConfigError(
                f"no reference error for corruption {corruption!r}; known: {', '.join(sorted(reference))}"
            )
        ref = float(reference[corruption])
        if ref <= 0:
            raise ConfigError(f"reference error for {corruption!r} must be > 0, got {ref}")
        out[corruption] = _mean(list(_by_severity(per_severity, corruption).values())) / ref
    return out


def mce(errors: ErrorTable, reference: Mapping[str, float] = ALEXNET_ERRORS) -> float:
    """Mean over corruptions of ``corruption_errors``."""
    ce = corruption_errors(errors, reference)
    if not ce:
        raise ConfigError("mCE of no corruptions")
    return _mean(list(ce.values()))


def relative_corruption_errors(
    model_errors: ErrorTable, clean_error: float, ref_errors: ErrorTable, ref_clean_error: float
) -> dict[str, float]:
    """CE^rel_c = Σ_s (E_{s,c} − E_clean) / Σ_s (E^ref_{s,c} − E^ref_clean), over the
    severities both models were measured at."""
    out: dict[str, float] = {}
    for corruption, per_severity in model_errors.items():
        if corruption not in ref_errors:
            raise ConfigError(f"baseline has no errors for corruption {corruption!r}")
        mine = _by_severity(per_severity, corruption)
        theirs = _by_severity(ref_errors[corruption], corruption)
        common = sorted(set(mine) & set(theirs))
        if not common:
            raise ConfigError(f"model and baseline share no severity for corruption {corruption!r}")
        denominator = sum(theirs[s] - ref_clean_error for s in common)
        if denominator <= 0:
            raise ConfigError(f"baseline degrades by {denominator:+.4f} under {corruption!r}: relative CE is undefined")
        out[corruption] = sum(mine[s] - clean_error for s in common) / denominator
    return out


def relative_mce(model_errors: ErrorTable, clean_error: float, ref_errors: ErrorTable, ref_clean_error: float) -> float:
    """Hendrycks' relative mCE of a model against a baseline measured in the same run."""
    rel = relative_corruption_errors(model_errors, clean_error, ref_errors, ref_clean_error)
    if not rel:
        raise ConfigError("relative mCE of no corruptions")
    return _mean(list(rel.values()))


__all__ = ["ALEXNET_ERRORS", "corruption_errors", "mce", "relative_corruption_errors", "relative_mce"]
