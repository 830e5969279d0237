"""The model builder and its pieces, without sampling (fast)."""

from __future__ import annotations

import json

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from scipy import stats

from safetywash.data.study import BenchmarkStudy
from safetywash.model.build import build_model
from safetywash.model.config import ModelConfig, Priors
from safetywash.model.data import (
    benchmark_centers,
    initial_point,
    prepare_data,
    zero_sum_by_group,
    zero_sum_by_group_inverse,
)
from safetywash.model.likelihood import capability_conditional, marginal_loglik_by_llm
from safetywash.model.pooling import (
    MIN_SLOPE,
    Pooling,
    capability_mode,
    informativeness,
    loading_estimates,
    pooling,
    resolved_config,
    start_capability,
)
from safetywash.model.simulate import simulate


@pytest.fixture(scope="module")
def small():
    return simulate(30, 4, {"bias": 3, "calibration": 3}, missing=0.3, seed=2)


def test_config_rejects_bad_choices():
    with pytest.raises(ValueError, match="transform"):
        ModelConfig(transform="log")
    with pytest.raises(ValueError, match="marginal"):
        ModelConfig(capability="marginal", factors=("bias",))
    with pytest.raises(ValueError, match="prior_scale"):
        ModelConfig(prior_scale=0)
    config = ModelConfig(factors=["bias"], prior_scale=2.0)
    assert ModelConfig.from_json(config.to_json()) == config


def test_zero_sum_map_is_orthonormal_and_invertible():
    groups = np.array([0, 1, 0, 2, 1, 2, 2, 0, 1, 0])
    rng = np.random.default_rng(0)
    w = rng.normal(size=len(groups) - 3)
    z = zero_sum_by_group(w, groups, 3)
    for g in range(3):
        assert abs(z[groups == g].sum()) < 1e-12
    np.testing.assert_allclose(zero_sum_by_group_inverse(z, groups, 3), w)
    jac = np.array([zero_sum_by_group(e, groups, 3) for e in np.eye(len(w))]).T
    np.testing.assert_allclose(jac.T @ jac, np.eye(len(w)), atol=1e-12)
    tensor = pt.vector("w")
    np.testing.assert_allclose(zero_sum_by_group(tensor, groups, 3, xp=pt).eval({tensor: w}), z)


def test_marginal_loglik_equals_multivariate_normal():
    rng = np.random.default_rng(1)
    n_llms, n_bench = 6, 5
    llm = np.repeat(np.arange(n_llms), n_bench)
    bench = np.tile(np.arange(n_bench), n_llms)
    keep = rng.random(len(llm)) > 0.3
    keep[::n_bench] = True  # every LLM keeps a score
    llm, bench = llm[keep], bench[keep]
    pops = np.array([0, 1, 0, 1, 0, 1])
    y = rng.normal(size=len(llm))
    a, lam = rng.normal(size=n_bench), rng.normal(size=n_bench)
    sig = np.exp(rng.normal(size=n_bench) * 0.3)
    mean, sd = np.array([0.4, -0.4]), np.array([1.3, 0.7])
    got = marginal_loglik_by_llm(y, llm, bench, pops, a, lam, sig, mean, sd)
    for i in range(n_llms):
        cells = llm == i
        b = bench[cells]
        cov = np.diag(sig[b] ** 2) + sd[pops[i]] ** 2 * np.outer(lam[b], lam[b])
        ref = stats.multivariate_normal(a[b] + lam[b] * mean[pops[i]], cov).logpdf(y[cells])
        assert got[i] == pytest.approx(ref, abs=1e-10)
    # Conditional of capability: Gaussian conjugacy, checked against a brute-force grid.
    m, s = capability_conditional(y, llm, bench, pops, a, lam, sig, mean, sd)
    grid = np.linspace(-8, 8, 40001)
    cells = llm == 0
    b = bench[cells]
    logp = stats.norm(mean[pops[0]], sd[pops[0]]).logpdf(grid)
    logp += stats.norm.logpdf(
        y[cells][:, None], a[b][:, None] + lam[b][:, None] * grid, sig[b][:, None]
    ).sum(0)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    assert m[0] == pytest.approx((w * grid).sum(), abs=1e-6)
    assert s[0] == pytest.approx(np.sqrt((w * (grid - m[0]) ** 2).sum()), abs=1e-6)


def test_model_has_named_dims_and_observed_cells_only(small):
    study, _ = small
    model = build_model(study)
    assert model.named_vars["score"].owner is not None
    assert set(model.coords) >= {"llm", "benchmark", "cell", "population", "area"}
    assert "model" not in model.coords
    assert len(model.coords["cell"]) == study.n_cells  # missing cells never enter
    assert np.isfinite(model.compile_logp()(model.initial_point()))


def test_marginal_model_has_no_capability_variables(small):
    study, _ = small
    model = build_model(study, ModelConfig(capability="marginal"))
    assert "capability_z" not in model.named_vars
    assert "score" not in model.named_vars  # the likelihood is a per-LLM Potential
    assert np.isfinite(model.compile_logp()(model.initial_point()))


def test_initial_point_follows_the_data(small):
    study, truth = small
    config = ModelConfig(factors=("bias",))
    data = prepare_data(study, config)
    start = initial_point(data, config)
    model = build_model(study, config)
    assert set(start) <= set(model.named_vars)
    # The data-driven capability start correlates with the truth (right sign).
    assert np.corrcoef(data.initial_capability, truth["capability"].values)[0, 1] > 0.8
    # Every safety loading starts with the sign of its true loading when that is clear.
    true = truth["loading"].to_series().reindex(data.safety_keys).to_numpy()
    slope = _at_start(model, start, "safety_loading")
    clear = np.abs(true) > 0.3
    assert (np.sign(slope[clear]) == np.sign(true[clear])).all()
    assert (start["factor_anchor_loading"] > 0).all()


def _at_start(model: pm.Model, start: dict, name: str) -> np.ndarray:
    """A model variable evaluated at start values given on the variables' own scale."""
    for rv_name, value in start.items():
        model.set_initval(model[rv_name], value)
    (out,) = model.replace_rvs_by_values([model[name]])
    fn = model.compile_fn(out, inputs=model.value_vars, on_unused_input="ignore")
    return fn(model.initial_point())


@pytest.mark.parametrize("population", ["chat", "base"])
def test_logit_transform_is_finite_on_real_data(population, real_study):
    data = prepare_data(real_study(population), ModelConfig(transform="logit"))
    assert np.isfinite(data.y).all()
    assert (data.scale > 0).all()
    assert data.transformed.any()
    # WMDP's chance level equals its upper bound (guessing is the safest stored value), so
    # its floor must fall back to the lower bound rather than collapse every score.
    wmdp = data.study.benchmarks.index.get_loc("wmdp")
    assert np.ptp(data.y[data.benchmark_idx == wmdp]) > 1


# --------------------------------------------------------------------------- priors as data


def test_priors_are_saved_with_the_config_and_scaled_by_prior_scale():
    priors = Priors(residual_log_mean_loc=-1.0, intercept_sd=2.0, factor_loading_scale=0.4)
    config = ModelConfig(prior_scale=2.0, priors=priors)
    assert ModelConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["priors"]["residual_log_mean_loc"] == -1.0
    # A config saved before priors were stored reads back with the default priors.
    old = json.loads(ModelConfig().to_json())
    del old["priors"]
    assert ModelConfig.from_json(json.dumps(old)) == ModelConfig()
    # A retired prior field of an earlier version is ignored when read.
    old = json.loads(config.to_json())
    old["priors"]["area_loading_mean_scale"] = 0.7
    assert ModelConfig.from_json(json.dumps(old)) == config
    with pytest.raises(TypeError):
        Priors(area_loading_mean_scale=0.7)
    assert ModelConfig(priors={"intercept_sd": 2.0}).priors.intercept_sd == 2.0
    scaled = config.scaled_priors
    for name in Priors.SCALED:
        assert getattr(scaled, name) == 2.0 * getattr(priors, name)
    for name in ("residual_log_mean_loc", "intercept_sd", "population_mean_sd"):
        assert getattr(scaled, name) == getattr(priors, name)
    with pytest.raises(ValueError, match="intercept_sd"):
        Priors(intercept_sd=0.0)


def test_model_reads_its_priors_from_the_config(small):
    study, _ = small
    priors = Priors(
        capability_loading_log_mean_loc=0.3,
        capability_loading_log_sd_scale=0.2,
        safety_loading_mean_scale=0.9,
        area_loading_sd_scale=0.4,
        safety_loading_sd_scale=0.3,
        residual_log_mean_loc=-1.5,
        residual_log_sd_scale=0.7,
        intercept_sd=3.0,
        factor_loading_scale=0.6,
    )
    s = 1.5
    # centred safety loadings keep safety_loading_mean a free variable (with centred area
    # averages its prior enters their covariance: test_centred_area_averages_...)
    config = ModelConfig(
        factors=("bias",), prior_scale=s, priors=priors, safety_loadings="centered"
    )
    model = build_model(study, config)
    x = 0.37
    expected = {
        "capability_loading_log_mean": stats.norm(0.3, 0.5 * s).logpdf(x),
        "capability_loading_log_sd": stats.gamma(a=2, scale=0.2 * s).logpdf(x),
        "safety_loading_mean": stats.norm(0, 0.9 * s).logpdf(x),
        "area_loading_sd": stats.gamma(a=2, scale=0.4 * s).logpdf(x),
        "safety_loading_sd": stats.gamma(a=2, scale=0.3 * s).logpdf(x),
        "residual_log_mean": stats.norm(-1.5, 0.5 * s).logpdf(x),
        "residual_log_sd": stats.gamma(a=2, scale=0.7 * s).logpdf(x),
        "factor_anchor_loading": stats.halfnorm(scale=0.6 * s).logpdf(x),
        "factor_free_loading": stats.norm(0, 0.6 * s).logpdf(x),
    }
    for name, want in expected.items():
        rv = model[name]
        value = np.full(tuple(rv.shape.eval()), x)
        got = np.asarray(pm.logp(rv, value).eval())
        # (PyTensor keeps scales exact in float32 as float32 constants: ~1e-8 relative.)
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)


def test_intercept_prior_is_normal_whatever_each_benchmarks_centre(small):
    """The sampler sees each benchmark's mean at its LLMs' mean start capability ``c_b``;
    the intercept keeps its Normal(0, intercept_sd) prior (a shift: unit Jacobian)."""
    study, _ = small
    data = prepare_data(study)
    model = build_model(study, ModelConfig(priors=Priors(intercept_sd=3.0)))
    theta = start_capability(data)
    n = len(data.coords["benchmark"])
    mean = np.array([theta[data.llm_idx[data.benchmark_idx == b]].mean() for b in range(n)])
    # (Rounded to a signed power of two, or 0 below 1/8: products with it are exact.)
    centre = benchmark_centers(data)
    assert np.abs(centre).max() > 0  # 30% missing: the centres are not all 0
    for c, m in zip(centre, mean, strict=True):
        assert c == 0 if abs(m) < 0.125 else (np.sign(c) == np.sign(m) and 0.7 < c / m < 1.42)
        assert c == 0 or np.log2(abs(c)) == int(np.log2(abs(c)))
    point = model.initial_point()
    loading = model.compile_fn(
        model.replace_rvs_by_values([model["loading"]])[0],
        inputs=model.value_vars,
        on_unused_input="ignore",
    )(point)
    x = np.linspace(-2, 2, n)
    point["intercept_at_center"] = x + loading * centre
    fns = model.replace_rvs_by_values([model["intercept"]])
    intercept = model.compile_fn(fns[0], inputs=model.value_vars, on_unused_input="ignore")
    np.testing.assert_allclose(intercept(point), x)
    logp = model.compile_logp(vars=[model["intercept_at_center"]], sum=False)(point)[0]
    np.testing.assert_allclose(logp, stats.norm(0, 3.0).logpdf(x), rtol=1e-6)


def test_informativeness_is_the_low_end_of_the_spread_over_the_error():
    rng = np.random.default_rng(0)
    group = np.repeat([0, 1, 2], [30, 25, 1])  # a singleton group adds no degree of freedom
    se = rng.uniform(0.05, 0.15, len(group))
    true = np.array([0.5, -0.3, 2.0])[group] + rng.normal(0, 0.4, len(group))
    estimate = true + rng.normal(0, se)
    # DerSimonian-Laird, written out group by group.
    q = scale = 0.0
    for g in range(3):
        w = 1 / se[group == g] ** 2
        x = estimate[group == g]
        q += np.sum(w * (x - np.sum(w * x) / w.sum()) ** 2)
        scale += w.sum() - np.sum(w**2) / w.sum()
    dof = len(group) - 3
    tau = np.sqrt((q - dof) / scale)
    assert tau == pytest.approx(0.4, rel=0.25)
    want = tau * np.sqrt(stats.chi2.ppf(0.05, dof) / dof) / np.median(se)
    assert informativeness(estimate, se, group) == pytest.approx(want, rel=1e-12)
    # Members that agree within their errors, or no degree of freedom: nothing to centre.
    same = np.full(len(group), 0.5) + rng.normal(0, se)
    assert informativeness(same, se, np.zeros_like(group)) < 0.5
    assert informativeness(estimate[:3], se[:3], np.arange(3)) == 0.0


def test_slopes_and_errors_match_least_squares(small):
    study, _ = small
    data = prepare_data(study)
    theta = np.linspace(-1.5, 1.5, study.n_llms)
    slope, se = loading_estimates(data, theta)
    for b in range(len(data.coords["benchmark"])):
        cells = data.benchmark_idx == b
        fit = stats.linregress(theta[data.llm_idx[cells]], data.y[cells])
        assert slope[b] == pytest.approx(fit.slope, abs=1e-9)
        assert se[b] == pytest.approx(fit.stderr, rel=1e-6)


def test_auto_pooling_follows_how_informative_each_group_is():
    # Capability loadings alike (spread 0.02 on the log scale) and safety loadings spread
    # widely within their areas: the first group non-centred, the second centred.
    safety = {"bias": 8, "calibration": 8, "truthfulness": 8}
    study, truth = simulate(
        80, 16, safety, loadings={f"cap{j:02d}": 0.8 + 0.02 * (j % 2) for j in range(16)}, seed=1
    )
    data = prepare_data(study)
    true = truth["loading"].sel(benchmark=data.safety_keys).values.reshape(3, 8)
    assert (true - true.mean(axis=1, keepdims=True)).std() > 0.2
    pool = pooling(data)
    assert not pool.capability and pool.safety and not pool.area
    # Not centred: whitened by every member's own estimate and error.
    assert len(pool.capability_estimates) == len(pool.capability_errors) == 16
    forced = ModelConfig(
        capability_loadings="centered", safety_loadings="noncentered", residuals="centered"
    )
    assert pooling(data, forced) == Pooling(capability=True, safety=False)
    names = build_model(study).named_vars
    assert "capability_loading_wz" in names and "capability_loading_log" not in names
    names = build_model(study, ModelConfig(capability_loadings="noncentered")).named_vars
    assert "capability_loading_z" in names and "capability_loading_wz" not in names
    assert "safety_loading" in names and "safety_loading_z" not in names
    names = build_model(study, forced).named_vars
    assert "capability_loading_log" in names and "safety_loading_z" in names
    # Two benchmarks per area, areas far apart: loadings within an area non-centred, the
    # areas' averages centred.
    study, _ = simulate(60, 8, {"alignment": 2, "bias": 2, "calibration": 2}, seed=3)
    pool = pooling(prepare_data(study))
    assert (pool.capability, pool.safety, pool.area) == (False, False, True)
    assert "area_loading_average" in build_model(study).named_vars


AREAS_6_2_1 = {"bias": 6, "calibration": 2, "truthfulness": 1}


def _area_model(safety_loadings: str):
    study, _ = simulate(20, 3, AREAS_6_2_1, seed=4)
    priors = Priors(safety_loading_mean_scale=0.9, area_loading_sd_scale=0.4)
    config = ModelConfig(prior_scale=1.5, priors=priors, safety_loadings=safety_loadings)
    assert list(prepare_data(study, config).areas) == list(AREAS_6_2_1)
    return build_model(study, config)


def test_area_means_are_pooled_across_areas():
    # Areas of 6, 2 and 1 benchmarks; centred safety loadings around non-centred area means.
    model = _area_model("centered")
    top, sd, within, z = 0.3, 0.25, 0.5, np.array([0.8, -1.2, 0.4])
    loadings = np.linspace(-1, 1, 9)
    area = np.repeat([0, 1, 2], [6, 2, 1])
    point = {
        "safety_loading_mean": top,
        "area_loading_sd_log__": np.log(sd),
        "safety_loading_sd_log__": np.log(within),
        "area_loading_z": z,
        "safety_loading": loadings,
    }
    names = [
        "safety_loading_mean",
        "area_loading_sd",
        "safety_loading_sd",
        "area_loading_z",
        "safety_loading",
    ]
    logp = model.compile_logp(vars=[model[n] for n in names], jacobian=False)
    want = (
        stats.norm(0, 0.9 * 1.5).logpdf(top)
        + stats.gamma(a=2, scale=0.4 * 1.5).logpdf(sd)
        + stats.gamma(a=2, scale=0.2 * 1.5).logpdf(within)
        + stats.norm(0, 1).logpdf(z).sum()
        + stats.norm((top + sd * z)[area], within).logpdf(loadings).sum()
    )
    assert float(logp({**model.initial_point(), **point})) == pytest.approx(want, rel=1e-6)
    start = {"safety_loading_mean": top, "area_loading_sd": sd, "area_loading_z": z}
    np.testing.assert_allclose(_at_start(model, start, "area_loading_mean"), top + sd * z)


def test_noncentred_area_form_has_the_hierarchical_prior():
    # Non-centred: (area_loading_z, area_loading_aux, safety_loading_z) map onto the
    # standardised area means and within-area offsets of the hierarchy by a rotation, so
    # i.i.d. standard normals give exactly its prior.
    model = _area_model("noncentered")
    assert model["safety_loading_z"].shape.eval()[0] == 9 - 3
    top, sd, within = 0.3, 0.25, 0.5
    area = np.repeat([0, 1, 2], [6, 2, 1])
    rng = np.random.default_rng(7)
    for _ in range(3):
        u, v, w = rng.normal(size=3), rng.normal(size=3), rng.normal(size=6)
        start = {"safety_loading_mean": top, "area_loading_sd": sd, "safety_loading_sd": within}
        start |= {"area_loading_z": u, "area_loading_aux": v, "safety_loading_z": w}
        mean = _at_start(model, start, "area_loading_mean")
        loading = _at_start(model, start, "safety_loading")
        standard = np.concatenate([(mean - top) / sd, (loading - mean[area]) / within])
        assert np.sum(standard**2) == pytest.approx(np.sum(u**2) + np.sum(v**2) + np.sum(w**2))
    # The single benchmark of an area is its average: no offset of its own.
    start["safety_loading_z"] = np.zeros(6)
    single = _at_start(model, start, "safety_loading")[-1]
    assert single == pytest.approx(top + np.sqrt(sd**2 + within**2) * u[2])


def test_area_factor_is_centred_and_uncorrelated_with_capability(small):
    study, _ = small
    model = build_model(study, ModelConfig(factors=("bias",)))
    rng = np.random.default_rng(3)
    start = {
        "capability_z": rng.normal(size=model["capability_z"].shape.eval()),
        "area_factor_z": rng.normal(size=model["area_factor_z"].shape.eval()),
    }
    eta = _at_start(model, start, "area_factor")[:, 0]
    theta = _at_start(model, start, "capability")
    assert abs(eta.mean()) < 1e-12
    assert abs(np.dot(theta - theta.mean(), eta)) < 1e-9
    # The rest of the raw draw is kept as it is.
    raw = start["area_factor_z"][:, 0] - start["area_factor_z"][:, 0].mean()
    assert np.corrcoef(raw, eta)[0, 1] > 0.9


def test_centred_area_averages_have_the_hierarchical_prior():
    # Informative area averages with non-centred loadings: the averages are sampled with
    # the level above integrated out, MVN(0, diag(r^2) + scale^2), r = sqrt(sd^2 +
    # within^2 / n); safety_loading_mean is drawn from its conditional given them, and each
    # area mean follows by the same rotation.
    study, _ = simulate(60, 8, {"alignment": 2, "bias": 2, "calibration": 3}, seed=3)
    config = ModelConfig(priors=Priors(safety_loading_mean_scale=0.7))
    assert pooling(prepare_data(study), config).area
    model = build_model(study, config)
    scale, sd, within, t = 0.7, 0.25, 0.5, 0.8
    n = np.array([2, 2, 3])
    average, aux = np.array([0.9, -0.2, 0.4]), np.array([0.5, -1.0, 0.3])
    point = {
        "area_loading_sd_log__": np.log(sd),
        "safety_loading_sd_log__": np.log(within),
        "area_loading_average": average,
        "safety_loading_mean_z": t,
    }
    logp = model.compile_logp(vars=[model["area_loading_average"]], jacobian=False)
    r = np.sqrt(sd**2 + within**2 / n)
    cov = np.diag(r**2) + scale**2
    want = stats.multivariate_normal(np.zeros(3), cov).logpdf(average)
    assert float(logp({**model.initial_point(), **point})) == pytest.approx(want, rel=1e-6)
    # top | averages: precision-weighted, so that p(averages) p(top | averages) is the
    # hierarchical joint prod_a N(average_a | top, r_a) N(top | 0, scale) at any top.
    precision = 1 / scale**2 + np.sum(1 / r**2)
    top = np.sum(average / r**2) / precision + t / np.sqrt(precision)
    for other in (top, -1.3, 2.0):
        joint = stats.norm(0, scale).logpdf(other) + stats.norm(other, r).logpdf(average).sum()
        split = want + stats.norm(top - t / np.sqrt(precision), 1 / np.sqrt(precision)).logpdf(
            other
        )
        assert split == pytest.approx(joint, rel=1e-9)
    start = {"area_loading_sd": sd, "safety_loading_sd": within, "safety_loading_mean_z": t}
    start |= {"area_loading_average": average, "area_loading_aux": aux}
    assert _at_start(model, start, "safety_loading_mean") == pytest.approx(top, rel=1e-9)
    u = (average - top) / r
    want = top + sd * (sd * u + within / np.sqrt(n) * aux) / r
    np.testing.assert_allclose(_at_start(model, start, "area_loading_mean"), want)


def test_prior_truth_draws_area_means_around_a_common_mean():
    # Tight within-area and across-area spreads: every safety loading is the common mean.
    tight = Priors(area_loading_sd_scale=1e-9, safety_loading_sd_scale=1e-9)
    _, truth = simulate(8, 2, {"bias": 2, "calibration": 1}, truth="prior", priors=tight, seed=5)
    safety = truth["loading"].values[2:]
    np.testing.assert_allclose(safety, safety[0], atol=1e-7)
    # Default priors: two areas' loadings share the common mean, so across draws they have
    # variance mean_scale^2 + E[area sd^2] + E[within sd^2] and covariance mean_scale^2.
    priors = Priors()
    draws = np.array(
        [
            simulate(6, 1, {"bias": 1, "calibration": 1}, truth="prior", seed=s)[1][
                "loading"
            ].values[1:]
            for s in range(600)
        ]
    )
    cov = np.cov(draws.T)
    # (E[Gamma(2, scale)^2] = 6 scale^2.)
    within = 6 * priors.safety_loading_sd_scale**2
    spread = 6 * priors.area_loading_sd_scale**2
    want_var = priors.safety_loading_mean_scale**2 + spread + within
    want_cov = priors.safety_loading_mean_scale**2
    assert abs(np.diag(cov) / want_var - 1).max() < 0.25  # about 3 standard errors
    assert abs(cov[0, 1] - want_cov) < 0.12  # 4 standard errors; independent areas: 0


def test_prior_truth_is_drawn_from_the_config_priors():
    # Spreads near 0: every drawn value sits at the prior's location.
    tight = Priors(
        capability_loading_log_mean_loc=np.log(1.3),
        capability_loading_log_mean_scale=1e-9,
        capability_loading_log_sd_scale=1e-9,
        residual_log_mean_loc=np.log(0.2),
        residual_log_mean_scale=1e-9,
        residual_log_sd_scale=1e-9,
    )
    _, truth = simulate(20, 4, {"bias": 2}, truth="prior", priors=tight, seed=3)
    np.testing.assert_allclose(truth["loading"].values[:4], 1.3, rtol=1e-6)
    np.testing.assert_allclose(truth["residual_sd"].values, 0.2, rtol=1e-6)
    # With the default priors the log capability loading is Normal(loc, scale) plus a
    # Gamma(2, sd_scale)-scaled normal: mean loc and variance scale^2 + 6 sd_scale^2.
    priors = Priors()
    logs = np.array(
        [
            np.log(simulate(6, 1, {"bias": 3}, truth="prior", seed=s)[1]["loading"].values[0])
            for s in range(300)
        ]
    )
    want_var = (
        priors.capability_loading_log_mean_scale**2 + 6 * priors.capability_loading_log_sd_scale**2
    )
    assert abs(logs.mean() - priors.capability_loading_log_mean_loc) < 4 * np.sqrt(want_var / 300)
    assert abs(logs.var() / want_var - 1) < 0.25
    # The design truth keeps its fixed spreads (no hyperparameter is drawn).
    _, design = simulate(20, 4, {"bias": 2}, truth="design", priors=tight, seed=3)
    assert not np.allclose(design["loading"].values[:4], 1.3)
    with pytest.raises(ValueError, match="truth"):
        simulate(truth="posterior")


@pytest.mark.parametrize("seed", range(6))
def test_prior_truth_factor_follows_the_model_sign_rule(seed):
    study, truth = simulate(
        25, 3, {"bias": 4}, factor_areas=["bias"], missing=0.3, truth="prior", seed=seed
    )
    data = prepare_data(study, ModelConfig(factors=("bias",)))
    anchor = np.array(data.factor_keys)[data.factor_anchor]
    assert (truth["factor_loading"].sel(benchmark=anchor).values > 0).all()
    rho = truth["loading"] / np.sqrt(
        truth["loading"] ** 2 + truth["factor_loading"] ** 2 + truth["residual_sd"] ** 2
    )
    np.testing.assert_allclose(truth["rho"].values, rho.values, rtol=1e-12)
    # As in the model, the factor is centred and uncorrelated with capability in-sample.
    eta, theta = truth["area_factor"].values[:, 0], truth["capability"].values
    assert abs(eta.mean()) < 1e-12 and abs(np.dot(theta - theta.mean(), eta)) < 1e-9


def test_capability_is_integrated_out_from_100_llms_outnumbering_benchmarks_twice():
    many, _ = simulate(100, 8, {"bias": 3}, seed=1)  # 100 LLMs, 11 benchmarks
    few, _ = simulate(99, 8, {"bias": 3}, seed=1)  # 99 LLMs
    wide, _ = simulate(150, 72, {"bias": 3}, seed=1)  # 150 LLMs, 75 benchmarks
    assert capability_mode(prepare_data(wide)) == "marginal"
    wider, _ = simulate(150, 73, {"bias": 3}, seed=1)  # 150 LLMs, 76 benchmarks
    assert capability_mode(prepare_data(wider)) == "sampled"
    assert capability_mode(prepare_data(many)) == "marginal"
    assert capability_mode(prepare_data(few)) == "sampled"
    assert capability_mode(prepare_data(many), ModelConfig(capability="sampled")) == "sampled"
    factored, _ = simulate(100, 8, {"bias": 3}, factor_areas=("bias",), seed=1)
    config = ModelConfig(factors=("bias",))
    assert capability_mode(prepare_data(factored, config), config) == "sampled"
    assert "capability_z" not in build_model(many).named_vars
    assert "capability_z" in build_model(few).named_vars
    assert resolved_config(prepare_data(many)).capability == "marginal"


def test_whitened_capability_loadings_keep_the_centred_model():
    """Four capability benchmarks scored by all 200 LLMs, twelve by 12 each, residual SDs
    (so standardised loadings) spread widely: the group is not centred, and every member
    is whitened by its own least-squares log loading and standard error."""
    # On the standardised scale a loading is set by the benchmark's residual SD.
    residuals = {f"cap{j:02d}": float(np.exp(1.5 * np.sin(3 * j) - 0.5)) for j in range(16)}
    residuals.update({"cap00": 0.15, "cap01": 0.3, "cap02": 0.45, "cap03": 0.6})
    full, _ = simulate(200, 16, {"bias": 3}, residuals=residuals, seed=4)
    rng = np.random.default_rng(4)
    llms = np.array(full.llms.index)
    keep = {
        k: set(llms) if j < 4 else set(rng.choice(llms, 12, replace=False))
        for j, k in enumerate(f"cap{j:02d}" for j in range(16))
    }
    scores = full.scores[
        [
            b not in keep or llm in keep[b]
            for llm, b in zip(full.scores["llm"], full.scores["benchmark"], strict=True)
        ]
    ]
    study = BenchmarkStudy.from_frames(scores, full.llms, full.benchmarks)
    data = prepare_data(study)
    pool = pooling(data)
    assert not pool.capability
    # Each member's estimate and error, recomputed here: an ordinary least-squares fit of
    # its scores on the data-driven capability, on the log scale (delta method).
    theta = start_capability(data)
    x, err = [], []
    for k in data.capability_keys:
        cells = data.benchmark_idx == data.coords["benchmark"].index(k)
        line = stats.linregress(theta[data.llm_idx[cells]], data.y[cells])
        x.append(np.log(max(line.slope, MIN_SLOPE)))
        err.append(line.stderr / line.slope)
    x, err = np.array(x), np.array(err)
    np.testing.assert_allclose(pool.capability_estimates, x, rtol=1e-9)
    np.testing.assert_allclose(pool.capability_errors, err, rtol=1e-9)
    assert err[:4].max() < 0.1 < np.median(err[4:])
    model = build_model(study)
    assert tuple(model["capability_loading_wz"].shape.eval()) == (16,)
    # The start values give every benchmark its own least-squares loading.
    start = initial_point(data)
    point = {**model.initial_point(), **start}
    point["capability_loading_log_sd_log__"] = np.log(point.pop("capability_loading_log_sd"))
    point = {v.name: point[v.name] for v in model.value_vars}
    cap = [data.coords["benchmark"].index(k) for k in data.capability_keys]
    values = model.compile_fn(
        model.replace_rvs_by_values([model["loading"]])[0],
        inputs=model.value_vars,
        on_unused_input="ignore",
    )(point)
    np.testing.assert_allclose(values[cap], np.exp(x), rtol=1e-9)
    # The same distribution as centred at any mean and spread: the density of z (its own
    # and the potential's) at the z of log loadings x, less the log Jacobian log dx/dz,
    # is log Normal(x; m, s). x = c + d z, c and d the mean and SD of x given m, s and its
    # estimate, here from the normal-normal precision formulas.
    terms = model.logp(vars=[model["capability_loading_wz"]], sum=False)[0].sum()
    terms = terms + model.replace_rvs_by_values([model["capability_loading_whitening"]])[0]
    logp = model.compile_fn(terms, inputs=model.value_vars, on_unused_input="ignore")
    for m, s in [(-0.3, 0.05), (0.2, 0.4), (-1.0, 1.5)]:
        log_loading = rng.normal(m, s, 16)
        precision = 1 / s**2 + 1 / err**2
        c, d = (m / s**2 + x / err**2) / precision, 1 / np.sqrt(precision)
        point["capability_loading_log_mean"] = np.asarray(m)
        point["capability_loading_log_sd_log__"] = np.asarray(np.log(s))
        point["capability_loading_wz"] = (log_loading - c) / d
        np.testing.assert_allclose(
            logp(point) - np.log(d).sum(),
            stats.norm.logpdf(log_loading, m, s).sum(),
            rtol=1e-9,
        )
