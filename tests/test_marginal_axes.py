"""Capability with axis factors integrated out: checked against dense Gaussian algebra."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from safetywash.model import likelihood
from safetywash.model.marginal import (
    capability_conditional,
    draw_capability,
    marginal_loglik_by_llm,
)

N_BENCH = 5
#: Population of every LLM: two populations with different means and SDs.
POPS = np.array([0, 1, 0, 1, 0, 1, 1])
DRAWS = (3,)
ARG_NAMES = ("intercept", "loading", "sigma", "pop_mean", "pop_sd")


def _problem(n_axes, seed=0):
    """A small design (cells in shuffled order, LLMs missing different benchmarks) and
    parameters with a leading draw axis; ``n_axes`` None means no ``axis_loading``."""
    rng = np.random.default_rng(seed)
    present = rng.random((len(POPS), N_BENCH)) > 0.4
    present[0] = True  # every benchmark
    present[1] = False
    present[1, 2] = True  # a single score: fewer scores than factors
    present[np.arange(len(POPS)), rng.integers(N_BENCH, size=len(POPS))] = True
    llm, bench = np.nonzero(present)
    order = rng.permutation(len(llm))
    llm, bench = llm[order], bench[order]
    params = {
        "intercept": rng.normal(size=(*DRAWS, N_BENCH)),
        "loading": rng.normal(1.0, 0.5, size=(*DRAWS, N_BENCH)),
        "sigma": np.exp(rng.normal(-0.5, 0.3, size=(*DRAWS, N_BENCH))),
        "pop_mean": np.array([0.6, -0.8]) + 0.1 * rng.normal(size=(*DRAWS, 2)),
        "pop_sd": np.array([1.5, 0.5]) * np.exp(0.1 * rng.normal(size=(*DRAWS, 2))),
    }
    axis = None if n_axes is None else rng.normal(0.0, 0.7, size=(*DRAWS, N_BENCH, n_axes))
    y = rng.normal(size=len(llm))
    return y, llm, bench, params, axis


def _args(y, llm, bench, params, draw=...):
    return (y, llm, bench, POPS, *(params[name][draw] for name in ARG_NAMES))


def _dense(llm, bench, params, axis, draw, i):
    """Cells, score mean and covariance, factor prior and Lfull of LLM ``i``, built by hand."""
    cells = llm == i
    b, p = bench[cells], POPS[i]
    lam = params["loading"][draw][b]
    lfull = lam[:, None] if axis is None else np.column_stack([lam, axis[draw][b]])
    n_factors = lfull.shape[1]
    prior_mean = np.zeros(n_factors)
    prior_mean[0] = params["pop_mean"][draw][p]
    prior_cov = np.eye(n_factors)
    prior_cov[0, 0] = params["pop_sd"][draw][p] ** 2
    mean_y = params["intercept"][draw][b] + lfull @ prior_mean
    cov_y = np.diag(params["sigma"][draw][b] ** 2) + lfull @ prior_cov @ lfull.T
    return cells, mean_y, cov_y, prior_mean, prior_cov, lfull


@pytest.mark.parametrize("n_axes", [None, 0, 1, 2])
def test_loglik_equals_dense_multivariate_normal(n_axes):
    y, llm, bench, params, axis = _problem(n_axes)
    got = marginal_loglik_by_llm(*_args(y, llm, bench, params), axis_loading=axis)
    assert got.shape == (*DRAWS, len(POPS))
    for draw in np.ndindex(DRAWS):
        for i in range(len(POPS)):
            cells, mean_y, cov_y, *_ = _dense(llm, bench, params, axis, draw, i)
            ref = stats.multivariate_normal(mean_y, cov_y).logpdf(y[cells])
            assert got[(*draw, i)] == pytest.approx(ref, rel=1e-10, abs=1e-10)


def test_one_factor_matches_existing_likelihood():
    y, llm, bench, params, _ = _problem(None)
    args = _args(y, llm, bench, params)
    ref = likelihood.marginal_loglik_by_llm(*args)
    np.testing.assert_array_equal(marginal_loglik_by_llm(*args), ref)
    ref_mean, ref_sd = likelihood.capability_conditional(*args)
    mean, sd = capability_conditional(*args)
    np.testing.assert_array_equal(mean, ref_mean)
    np.testing.assert_array_equal(sd, ref_sd)
    # The general code with no axis columns, or with axes that load on nothing, agrees too.
    for axis in (np.zeros((*DRAWS, N_BENCH, 0)), np.zeros((*DRAWS, N_BENCH, 2))):
        got = marginal_loglik_by_llm(*args, axis_loading=axis)
        np.testing.assert_allclose(got, ref, rtol=1e-12)
        mean, chol = capability_conditional(*args, axis_loading=axis)
        np.testing.assert_allclose(mean[..., 0], ref_mean, rtol=1e-12)
        np.testing.assert_allclose(chol[..., 0, 0], ref_sd, rtol=1e-12)


def _tensor_loglik(n_axes, llm, bench, *, static=True):
    """The pytensor graph of the log-likelihood: inputs and per-LLM output."""
    import pytensor.tensor as pt

    inputs = [pt.vector("y"), *(pt.vector(name) for name in ARG_NAMES)]
    shape = (N_BENCH, n_axes) if static else (None, None)
    axis = pt.tensor("axis_loading", shape=shape, dtype="float64")
    out = marginal_loglik_by_llm(inputs[0], llm, bench, POPS, *inputs[1:], axis_loading=axis, xp=pt)
    return [*inputs, axis], out


@pytest.mark.parametrize("n_axes", [1, 2])
def test_pytensor_graph_equals_numpy(n_axes):
    import pytensor
    from pytensor.tensor.blockwise import Blockwise

    y, llm, bench, params, axis = _problem(n_axes, seed=3)
    inputs, out = _tensor_loglik(n_axes, llm, bench)
    fn = pytensor.function(inputs, out)
    assert not any(isinstance(node.op, Blockwise) for node in fn.maker.fgraph.apply_nodes)
    expected = marginal_loglik_by_llm(*_args(y, llm, bench, params), axis_loading=axis)
    for draw in range(DRAWS[0]):
        got = fn(y, *(params[name][draw] for name in ARG_NAMES), axis[draw])
        np.testing.assert_allclose(got, expected[draw], rtol=1e-12)
    with pytest.raises(ValueError, match="static last dimension"):
        _tensor_loglik(n_axes, llm, bench, static=False)


@pytest.mark.parametrize("n_axes", [1, 2])
def test_numba_backend_compiles_value_and_gradient(n_axes):
    pytest.importorskip("numba")
    import pytensor

    y, llm, bench, params, axis = _problem(n_axes, seed=4)
    inputs, out = _tensor_loglik(n_axes, llm, bench)
    total = out.sum()
    grads = pytensor.grad(total, inputs[1:])
    fn = pytensor.function(inputs, [out, *grads], mode="NUMBA")
    values = [y, *(params[name][0] for name in ARG_NAMES), axis[0]]
    got, *grad = fn(*values)
    np.testing.assert_allclose(
        got,
        marginal_loglik_by_llm(*_args(y, llm, bench, params, 0), axis_loading=axis[0]),
        rtol=1e-12,
    )

    # Gradient against central finite differences of the numpy path.
    def total_np(vals):
        args = (vals[0], llm, bench, POPS, *vals[1:6])
        return marginal_loglik_by_llm(*args, axis_loading=vals[6]).sum()

    step = 1e-6
    for k, g in enumerate(grad, start=1):
        fd = np.zeros_like(values[k])
        for idx in np.ndindex(values[k].shape):
            up, down = [v.copy() for v in values], [v.copy() for v in values]
            up[k][idx] += step
            down[k][idx] -= step
            fd[idx] = (total_np(up) - total_np(down)) / (2 * step)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n_axes", [1, 2])
def test_conditional_equals_dense_gaussian_conditioning(n_axes):
    y, llm, bench, params, axis = _problem(n_axes, seed=5)
    mean, chol = capability_conditional(*_args(y, llm, bench, params), axis_loading=axis)
    assert mean.shape == (*DRAWS, len(POPS), n_axes + 1)
    assert chol.shape == (*DRAWS, len(POPS), n_axes + 1, n_axes + 1)
    np.testing.assert_array_equal(np.triu(chol, 1), 0.0)
    for draw in np.ndindex(DRAWS):
        for i in range(len(POPS)):
            cells, mean_y, cov_y, prior_mean, prior_cov, lfull = _dense(
                llm, bench, params, axis, draw, i
            )
            cov_fy = prior_cov @ lfull.T
            gain = np.linalg.solve(cov_y, cov_fy.T).T  # Sigma_fy Sigma_yy^{-1}
            ref_mean = prior_mean + gain @ (y[cells] - mean_y)
            ref_cov = prior_cov - gain @ cov_fy.T
            np.testing.assert_allclose(mean[(*draw, i)], ref_mean, rtol=1e-10, atol=1e-12)
            c = chol[(*draw, i)]
            np.testing.assert_allclose(c @ c.T, ref_cov, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_axes", [1, 2])
def test_draws_have_the_conditional_moments(n_axes):
    y, llm, bench, params, axis = _problem(n_axes, seed=6)
    mean, chol = capability_conditional(*_args(y, llm, bench, params), axis_loading=axis)
    rng = np.random.default_rng(7)
    assert draw_capability(mean, chol, rng).shape == mean.shape
    n_draws = 400_000
    m, c = mean[0, 3], chol[0, 3]
    k = len(m)
    draws = draw_capability(
        np.broadcast_to(m, (n_draws, k)), np.broadcast_to(c, (n_draws, k, k)), rng
    )
    cov = c @ c.T
    # Standard errors of a Gaussian sample mean and covariance; 5 SE per entry (at most 9
    # entries) fails by chance with probability ~1e-5.
    se_mean = np.sqrt(np.diag(cov) / n_draws)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n_draws)
    assert np.all(np.abs(draws.mean(0) - m) < 5 * se_mean)
    assert np.all(np.abs(np.cov(draws, rowvar=False) - cov) < 5 * se_cov)


def test_more_than_two_axes_is_rejected():
    y, llm, bench, params, axis = _problem(3)
    args = _args(y, llm, bench, params)
    with pytest.raises(ValueError, match="at most 2 axis factors"):
        marginal_loglik_by_llm(*args, axis_loading=axis)
    with pytest.raises(ValueError, match="at most 2 axis factors"):
        capability_conditional(*args, axis_loading=axis)
