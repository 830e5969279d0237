"""Convergence diagnostics of a fit and a plain verdict on whether to trust it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import arviz as az
import numpy as np
import xarray as xr

#: Thresholds of a trustworthy fit (Vehtari et al. 2021 for R-hat and ESS).
MAX_RHAT = 1.01
MIN_ESS = 400
MAX_DIVERGENCES = 0


@dataclass(frozen=True)
class Diagnostics:
    """Summary convergence figures of a posterior.

    Attributes
    ----------
    max_rhat, min_ess_bulk, min_ess_tail : float
        Worst values over every scalar of ``var_names``.
    worst_rhat, worst_ess_bulk, worst_ess_tail : str
        The variable holding each worst value.
    divergences : int
        Divergent transitions after tuning.
    n_draws : int
        Chains x draws.
    sampling_time : float
        Seconds spent sampling, when recorded.
    """

    max_rhat: float
    worst_rhat: str
    min_ess_bulk: float
    worst_ess_bulk: str
    min_ess_tail: float
    worst_ess_tail: str
    divergences: int
    n_draws: int
    sampling_time: float = float("nan")

    @property
    def problems(self) -> list[str]:
        """What fails the thresholds, in words (empty when the fit can be trusted)."""
        out = []
        if not self.max_rhat <= MAX_RHAT:
            out.append(f"R-hat {self.max_rhat:.3f} > {MAX_RHAT} ({self.worst_rhat})")
        if not self.min_ess_bulk >= MIN_ESS:
            out.append(f"bulk ESS {self.min_ess_bulk:.0f} < {MIN_ESS} ({self.worst_ess_bulk})")
        if not self.min_ess_tail >= MIN_ESS:
            out.append(f"tail ESS {self.min_ess_tail:.0f} < {MIN_ESS} ({self.worst_ess_tail})")
        if self.divergences > MAX_DIVERGENCES:
            out.append(f"{self.divergences} divergent transitions")
        return out

    @property
    def trustworthy(self) -> bool:
        """True when every threshold holds."""
        return not self.problems

    def verdict(self) -> str:
        """One plain sentence on whether the fit can be trusted."""
        figures = (
            f"max R-hat {self.max_rhat:.3f}, min bulk ESS {self.min_ess_bulk:.0f}, "
            f"min tail ESS {self.min_ess_tail:.0f}, {self.divergences} divergences "
            f"({self.n_draws} draws)"
        )
        if self.trustworthy:
            return f"OK: the fit converged ({figures})."
        return (
            f"DO NOT TRUST this fit: {'; '.join(self.problems)}. Figures: {figures}. "
            "Run longer (--draws/--tune) or check the model."
        )

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable), with the verdict."""
        out = asdict(self)
        out["trustworthy"] = self.trustworthy
        out["verdict"] = self.verdict()
        return out


def _worst(ds: xr.Dataset, reduce: str) -> tuple[float, str]:
    best_val, best_name = (np.inf if reduce == "min" else -np.inf), ""
    for name, da in ds.data_vars.items():
        values = np.asarray(da.values, dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        val = values.min() if reduce == "min" else values.max()
        if (reduce == "min" and val < best_val) or (reduce == "max" and val > best_val):
            best_val, best_name = float(val), str(name)
    return best_val, best_name


def fit_diagnostics(
    dt: xr.DataTree, var_names: Sequence[str] | None = None, *, group: str = "posterior"
) -> Diagnostics:
    """R-hat, bulk and tail ESS and divergences of a fit.

    Parameters
    ----------
    dt : xarray.DataTree
        A fit with ``posterior`` and (for divergences) ``sample_stats`` groups.
    var_names : sequence of str, optional
        Variables to check; default every variable of ``group``. Deterministics that are
        constant by construction have undefined R-hat and are skipped.
    group : str
        Group holding the draws.

    Returns
    -------
    Diagnostics
    """
    post = dt[group].to_dataset()
    if var_names is not None:
        post = post[list(var_names)]
    post = post[[v for v in post.data_vars if float(post[v].std()) > 0]]
    rhat = az.rhat(post)
    ess_bulk = az.ess(post, method="bulk")
    ess_tail = az.ess(post, method="tail")
    max_rhat, worst_rhat = _worst(rhat, "max")
    min_bulk, worst_bulk = _worst(ess_bulk, "min")
    min_tail, worst_tail = _worst(ess_tail, "min")
    divergences = 0
    if "sample_stats" in dt.children and "diverging" in dt["sample_stats"].data_vars:
        divergences = int(dt["sample_stats"]["diverging"].sum())
    n_draws = int(post.sizes["chain"] * post.sizes["draw"])
    return Diagnostics(
        max_rhat=max_rhat,
        worst_rhat=worst_rhat,
        min_ess_bulk=min_bulk,
        worst_ess_bulk=worst_bulk,
        min_ess_tail=min_tail,
        worst_ess_tail=worst_tail,
        divergences=divergences,
        n_draws=n_draws,
        sampling_time=float(dt[group].attrs.get("sampling_time", float("nan"))),
    )
