r"""Regression surrogates for noisy micro-models: hyperelastic stresses, Arrhenius coefficients.

:class:`ArrheniusRegressionModel` fits a thermally activated scalar ``σ(T)`` (kinetic Monte
Carlo conductivities) in Arrhenius coordinates; see its docstring. The rest of this note is
about :class:`HyperelasticRegressionModel`.

A stochastic micro-model (molecular dynamics at T > 0) returns the first Piola–Kirchhoff stress
:math:`P(F)` with noise of standard error :math:`s`. A macro Newton iteration on those values
cannot converge below the noise, and difference-quotient tangents of noisy data are worse still.
:class:`HyperelasticRegressionModel` replaces the micro-model by a smooth, deterministic,
thermodynamically consistent fit:

- a free energy polynomial :math:`W(E) = \sum_{1 \le |\alpha| \le p} c_\alpha e^\alpha` in the
  independent components :math:`e` of the Green–Lagrange strain :math:`E = (F^\top F - I)/2`
  (``(E11, E22, E12)`` in 2D; ``(E11, E22, E33, E23, E13, E12)`` in 3D), so
  :math:`S = \partial W/\partial E` is symmetric, objective and has a major-symmetric tangent;
- fitted by weighted least squares (weights :math:`1/s`) to the second Piola–Kirchhoff stresses
  :math:`S = F^{-1}P` of micro runs at a quasi-random (Sobol) design of right stretch tensors
  :math:`U = \sqrt{I + 2E}` with :math:`|e|_\infty \le r`, all run in one batched call;
- served as :math:`P = F S(E)` with the exact tangent
  :math:`\mathrm dP = \mathrm dF\,S + F\,\mathbb C : \mathrm{sym}(F^\top \mathrm dF)`.

The fit is checked against its noise: ``chi2`` (weighted residual sum of squares per degree of
freedom) near 1 says the polynomial describes the data to within the noise; much larger says
the degree is too low for the strain range. A request whose strain lies outside the fitted box
is not extrapolated: the box grows to 1.25 times the largest requested component, new design
points are run and the fit is redone (``refits`` counts this).
"""

from __future__ import annotations

import itertools
import time
import warnings

import numpy as np

from fe2hmm.errors import MicroSolveError
from fe2hmm.micro.interface import MicroModel, MicroResult, TaskBatch, run_tasks
from fe2hmm.reuse.wrapper import ReuseWrapper

__all__ = ["ArrheniusRegressionModel", "HyperelasticRegressionModel", "strain_components"]


def _index_pairs(d: int) -> list[tuple[int, int]]:
    return [(0, 0), (1, 1), (0, 1)] if d == 2 else [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


def _components(T: np.ndarray) -> np.ndarray:
    """Independent components ``(n, k)`` of symmetric tensors ``(n, d, d)``, order of ``e``."""
    return np.stack([T[:, i, j] for i, j in _index_pairs(T.shape[-1])], axis=-1)


def strain_components(F: np.ndarray) -> np.ndarray:
    """Independent Green–Lagrange strain components ``e`` ``(n, k)`` of ``F`` ``(n, d, d)``."""
    F = np.asarray(F, dtype=float)
    return _components(0.5 * (np.einsum("nki,nkj->nij", F, F) - np.eye(F.shape[-1])))


def _tensor(g: np.ndarray, d: int) -> np.ndarray:
    """Symmetric tensors ``(n, d, d)`` from ``∂W/∂e`` ``(n, k)`` (off-diagonals halved)."""
    S = np.zeros((g.shape[0], d, d))
    for c, (i, j) in enumerate(_index_pairs(d)):
        if i == j:
            S[:, i, i] = g[:, c]
        else:
            S[:, i, j] = S[:, j, i] = 0.5 * g[:, c]
    return S


class HyperelasticRegressionModel(ReuseWrapper):
    """Serve ``P(F)`` of a noisy micro-model from a fitted polynomial free energy ``W(E)``.

    Args:
        model: the wrapped micro-model: one input, the deformation gradient ``(d, d)``, one
            output, the first Piola–Kirchhoff stress ``(d, d)`` (any names, e.g.
            ``deformation_gradient``/``stress`` or ``F``/``P``), no parameters;
            ``standard_errors`` are used as weights when it returns them. The served model is
            deterministic (``is_stochastic`` False): its noise is in the fitted coefficients,
            fixed between refits, so a macro Newton converges quadratically on it.
        strain_range: half widths ``r`` of the initial design box: one for every strain
            component, or ``(k,)``.
        degree: polynomial degree ``p`` of ``W`` (stress of degree ``p − 1``), >= 2; default 6
            in 2D (83 coefficients), 4 in 3D (209).
        samples: design points per sampling round (default: the power of two at or above twice
            the number of coefficients over ``k``); the first round adds the origin
            (``F = I``).
        seed: seed of the scrambled Sobol design.

    Attributes:
        exponents: monomial exponents ``(m, k)``.
        coefficients: fitted ``c_α`` ``(m,)``.
        chi2: weighted residual sum of squares per degree of freedom of the last fit (``nan``
            without standard errors).
        residual: largest absolute residual of the last fit, relative to ``max |S|``.
        design: strains of all micro runs so far ``(N, k)`` and ``stresses`` / ``errors`` the
            measured second Piola–Kirchhoff components ``(N, k)``.
        refits: how often the design box had to grow.
    """

    def __init__(
        self,
        model: MicroModel,
        strain_range: float = 0.05,
        degree: int | None = None,
        samples: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(model)
        ins, outs = dict(model.input_shapes), dict(model.output_shapes)
        shape = next(iter(ins.values())) if len(ins) == 1 else None
        if (
            len(ins) != 1
            or len(outs) != 1
            or shape not in ((2, 2), (3, 3))
            or next(iter(outs.values())) != shape
            or model.parameter_shapes
        ):
            raise ValueError(
                "HyperelasticRegressionModel needs a model with one input (the deformation "
                "gradient, (d, d)), one output (the stress, (d, d)) and no parameters; "
                f"{type(model).__name__} has inputs {ins}, outputs {outs}, parameters "
                f"{dict(model.parameter_shapes)}"
            )
        ((self._input, _),) = ins.items()
        ((self._output, _),) = outs.items()
        if degree is None:
            degree = 6 if shape == (2, 2) else 4
        if int(degree) != degree or degree < 2:
            raise ValueError(f"degree must be an integer >= 2, got {degree!r}")
        self.dim = shape[0]
        self.k = len(_index_pairs(self.dim))
        self._doubled = np.where(np.arange(self.k) < self.dim, 1.0, 2.0)  # e_c -> g_c factors
        r = np.broadcast_to(np.asarray(strain_range, dtype=float), (self.k,)).copy()
        if not np.all(np.isfinite(r) & (r > 0) & (r < 0.5)):
            raise ValueError(
                f"strain_range must be in (0, 0.5) per component, got {strain_range!r}"
            )
        self.exponents = np.array(
            [
                a
                for a in itertools.product(range(int(degree) + 1), repeat=self.k)
                if 1 <= sum(a) <= degree
            ]
        )
        m = len(self.exponents)
        self.samples = (
            int(samples) if samples is not None else 1 << int(np.ceil(np.log2(2 * m / self.k)))
        )
        if self.samples * self.k < m:
            raise ValueError(
                f"samples = {samples} give {self.samples * self.k} equations for {m} coefficients"
            )
        self.range = r
        self.refits = 0
        self._rng_seed = int(seed)
        self.design = np.zeros((0, self.k))
        self.stresses = np.zeros((0, self.k))
        self.errors = np.zeros((0, self.k))
        self.coefficients = np.zeros(m)
        self.chi2, self.residual = float("nan"), float("nan")
        self._sample(self.range, include_origin=True)

    @property
    def is_stochastic(self) -> bool:  # type: ignore[override]
        """False: the fit is a deterministic function (see the class docstring)."""
        return False

    # -- design and fit ------------------------------------------------------------------------
    def _sample(self, half_width: np.ndarray, include_origin: bool = False) -> None:
        """Run the wrapped model at ``samples`` new design strains in ``Π [-r_c, r_c]``; refit."""
        from scipy.stats import qmc

        sobol = qmc.Sobol(self.k, scramble=True, seed=self._rng_seed + self.refits)
        with warnings.catch_warnings():  # balance of 2^m points is immaterial for a fit
            warnings.simplefilter("ignore", UserWarning)
            e = half_width * (2.0 * sobol.random(self.samples) - 1.0)
        if include_origin:
            e = np.vstack([np.zeros(self.k), e])
        d = self.dim
        E = _tensor(self._doubled * e, d)  # tensor from components
        w, Q = np.linalg.eigh(np.eye(d) + 2.0 * E)
        if np.any(w <= 0):
            raise ValueError(f"design strain range {half_width.tolist()} reaches det F <= 0")
        U = np.einsum("nij,nj,nkj->nik", Q, np.sqrt(w), Q)  # right stretch: E(U) = E
        batch = self.forward({self._input: U}, {}, np.arange(len(U)), False)
        result = run_tasks(self.inner, batch)
        Uinv = np.linalg.inv(U)
        S = Uinv @ result.outputs[self._output]
        S = 0.5 * (S + np.swapaxes(S, 1, 2))
        errs = result.standard_errors.get(self._output)
        comps = _components(S)
        if errs is None:
            comp_errors = np.zeros_like(comps)
        else:  # S = U⁻¹ P, entries of P independent
            comp_errors = np.sqrt(_components(np.einsum("nik,nkj->nij", Uinv**2, errs**2)))
        self.design = np.vstack([self.design, e])
        self.stresses = np.vstack([self.stresses, comps])
        self.errors = np.vstack([self.errors, comp_errors])
        self._fit()

    def _gradient_matrix(self, e: np.ndarray) -> np.ndarray:
        """``∂(e^α)/∂e_c`` ``(n, k, m)``."""
        a = self.exponents  # (m, k)
        G = np.empty((e.shape[0], self.k, len(a)))
        for c in range(self.k):
            lowered = a.copy()
            lowered[:, c] = np.maximum(a[:, c] - 1, 0)
            G[:, c, :] = a[:, c] * np.prod(e[:, None, :] ** lowered[None], axis=-1)
        return G

    def _hessian_matrix(self, e: np.ndarray) -> np.ndarray:
        """``∂²(e^α)/∂e_c∂e_q`` ``(n, k, k, m)``."""
        a = self.exponents
        Hm = np.empty((e.shape[0], self.k, self.k, len(a)))
        for c in range(self.k):
            for q in range(self.k):
                lowered = a.copy()
                factor = a[:, c].astype(float)
                lowered[:, c] = a[:, c] - 1
                factor = factor * lowered[:, q]
                lowered[:, q] = lowered[:, q] - 1
                lowered = np.maximum(lowered, 0)
                Hm[:, c, q, :] = factor * np.prod(e[:, None, :] ** lowered[None], axis=-1)
        return Hm

    def _fit(self) -> None:
        """Weighted least squares for the coefficients ``c``.

        Equations ``∂W/∂e_c = g_c`` with ``g`` the measured ``S`` components (off-diagonals
        doubled), rows scaled by the standard errors.
        """
        A = self._gradient_matrix(self.design).reshape(-1, len(self.exponents))
        b = (self.stresses * self._doubled).reshape(-1)
        sd = (self.errors * self._doubled).reshape(-1)
        weighted = bool(np.all(sd > 0))
        w = 1.0 / sd if weighted else np.ones_like(b)
        Aw = A * w[:, None]
        self.coefficients, *_ = np.linalg.lstsq(Aw, b * w, rcond=None)
        r = A @ self.coefficients - b
        dof = b.size - len(self.exponents)
        self.chi2 = float(np.sum((r * w) ** 2) / dof) if weighted and dof > 0 else float("nan")
        # covariance of c (inflated by chi2 when the model misfits), for prediction errors
        self._covariance = None
        if weighted and dof > 0:
            self._covariance = max(self.chi2, 1.0) * np.linalg.pinv(Aw.T @ Aw)
        self.residual = float(np.abs(r).max() / max(np.abs(b).max(), 1e-300))

    # -- serving -------------------------------------------------------------------------------
    def second_piola(self, e: np.ndarray) -> np.ndarray:
        """Fitted ``S`` ``(n, d, d)`` at strain components ``e`` ``(n, k)``."""
        return _tensor(self._gradient_matrix(e) @ self.coefficients, self.dim)

    def standard_errors(self, F: np.ndarray) -> np.ndarray:
        """Standard errors ``(n, d, d)`` of the served ``P`` from the fit's covariance.

        Zero for a deterministic model (no weights); entries of ``S`` treated as independent.
        """
        F = np.asarray(F, dtype=float)
        if self._covariance is None:
            return np.zeros_like(F)
        G = self._gradient_matrix(strain_components(F))  # (n, k, m)
        var_g = np.einsum("nkm,mq,nkq->nk", G, self._covariance, G)
        S_var = _tensor(var_g, self.dim)
        S_var = np.where(np.eye(self.dim, dtype=bool), S_var, 0.5 * S_var)  # (½ g)² = ¼ var g
        return np.sqrt(np.einsum("nik,nkj->nij", F**2, S_var))

    def micro_tasks(self, inputs, parameters, *, tangents=True) -> TaskBatch:
        """``P = F S(E)`` and its exact tangent (no tasks); grows the design box if needed."""
        n = self.check_batch(inputs, parameters)
        self.statistics.points_requested += n
        self.statistics.micro_requests += n
        t0, solve_seconds = time.perf_counter(), self.statistics.seconds
        F = np.asarray(inputs[self._input], dtype=float)
        det = np.linalg.det(F)
        if np.any(~(det > 0)):
            i = int(np.flatnonzero(~(det > 0))[0])
            raise MicroSolveError(
                f"deformation gradient needs det F > 0, got det F = {det[i]:g}", point=i
            )
        e = strain_components(F)
        reach = np.abs(e).max(axis=0) if n else np.zeros(self.k)
        if np.any(reach > self.range):
            self.range = np.maximum(self.range, 1.25 * reach)
            self.refits += 1
            self._sample(self.range)
        self.statistics.surrogate_hits += n
        d = self.dim
        S = self.second_piola(e)
        outputs = {self._output: F @ S}
        result_tangents = {}
        if tangents:
            Hm = self._hessian_matrix(e) @ self.coefficients  # (n, k, k): ∂²W/∂e∂e
            T = np.empty((n, d, d, d, d))
            for k in range(d):
                for m in range(d):
                    dF = np.zeros((d, d))
                    dF[k, m] = 1.0
                    FtdF = np.einsum("nik,ij->nkj", F, dF)  # Fᵀ dF
                    dE = 0.5 * (FtdF + np.swapaxes(FtdF, 1, 2))
                    dS = _tensor(np.einsum("ncq,nq->nc", Hm, _components(dE)), d)
                    T[:, :, :, k, m] = dF @ S + F @ dS
            result_tangents[(self._output, self._input)] = T
        self.statistics.reuse_seconds += (time.perf_counter() - t0) - (
            self.statistics.seconds - solve_seconds
        )
        result = MicroResult(outputs, result_tangents)
        return TaskBatch([], lambda _results: result)


class ArrheniusRegressionModel(ReuseWrapper):
    r"""Serve a noisy, thermally activated scalar ``σ(T)`` from a fit in Arrhenius coordinates.

    A stochastic micro-model (kinetic Monte Carlo of ion hopping) returns ``σ(T)`` with noise
    of standard error ``s``; a macro Newton iteration on those values stalls at the noise and
    has no tangent. This wrapper runs the model once, in one batched call, at ``nodes``
    temperatures equally spaced in :math:`1/T` over ``temperature_range`` and fits

    .. math:: \ln(\sigma T) = \sum_{j=0}^{p} a_j u^j, \qquad u = (1/T - x_0)/h,

    (:math:`x_0, h` centre and half width of the fitted :math:`1/T` interval) by weighted least
    squares with weights :math:`\sigma/s` (the standard errors of :math:`\ln\sigma`). Degree
    1 is the Arrhenius law :math:`\sigma T = A e^{-E_a/T}`; degree 2 (default) adds the
    :math:`1/T^2` term of Gaussian site-energy disorder. The served model is deterministic (its
    noise is in the fitted coefficients), smooth and has the exact tangent

    .. math:: \frac{d\sigma}{dT} = \sigma\Big(\frac{E(T)}{T^2} - \frac1T\Big), \qquad
              E(T) = -\frac{d\ln(\sigma T)}{d(1/T)}

    (:math:`E(T)` the apparent activation energy, :meth:`activation_energy`). Outputs carry
    ``error_bounds``: two standard errors of the fitted mean (the covariance of the
    coefficients, inflated by ``chi2`` when the degree misfits). A temperature outside the
    fitted interval is neither extrapolated nor used to grow the fit (an unconverged Newton or
    continuation iterate would otherwise change the closure for good): it is a
    :class:`~fe2hmm.errors.MicroSolveError` naming the point and the interval, which a
    continuation step treats as a failed corrector (it halves the step) and a user as the cue to
    widen ``temperature_range``.

    Args:
        model: the wrapped micro-model: one scalar input (the temperature, any name), one
            scalar output (the thermally activated coefficient, > 0), no parameters;
            ``standard_errors`` are used as weights when it returns them.
        temperature_range: ``(T_low, T_high)`` of the initial design, ``0 < T_low < T_high``
            (the model's temperature unit).
        nodes: design temperatures per sampling round, > ``degree`` + 1.
        degree: polynomial degree ``p`` in :math:`1/T`, 1..4.

    Attributes:
        coefficients: ``a_j`` ``(p + 1,)``; ``covariance`` their covariance ``(p + 1, p + 1)``.
        chi2: weighted residual sum of squares per degree of freedom of the last fit (``nan``
            without standard errors): near 1 means the degree describes the data within the
            noise.
        design: temperatures of the model runs ``(nodes,)``; ``values``, ``errors`` the
            measured outputs and their standard errors ``(nodes,)``.
        temperature_range: the fitted interval.

    Raises:
        ValueError: the model is not scalar-in/scalar-out without parameters; bad range,
            nodes or degree; the model returned a non-positive value at a design temperature.
    """

    restart_exact = True  # fitted once, at construction, from seeded runs

    def __init__(
        self,
        model: MicroModel,
        temperature_range: tuple[float, float],
        nodes: int = 8,
        degree: int = 2,
    ) -> None:
        super().__init__(model)
        ins, outs = dict(model.input_shapes), dict(model.output_shapes)
        if (
            len(ins) != 1
            or len(outs) != 1
            or next(iter(ins.values())) != ()
            or next(iter(outs.values())) != ()
            or model.parameter_shapes
        ):
            raise ValueError(
                "ArrheniusRegressionModel needs a model with one scalar input (the "
                "temperature), one scalar output and no parameters; "
                f"{type(model).__name__} has inputs {ins}, outputs {outs}, parameters "
                f"{dict(model.parameter_shapes)}"
            )
        ((self._input, _),) = ins.items()
        ((self._output, _),) = outs.items()
        if isinstance(degree, bool) or int(degree) != degree or not 1 <= degree <= 4:
            raise ValueError(f"degree must be an integer in 1..4, got {degree!r}")
        self.degree = int(degree)
        if isinstance(nodes, bool) or int(nodes) != nodes or nodes < self.degree + 2:
            raise ValueError(
                f"nodes must be an integer >= degree + 2 = {self.degree + 2} (a fit with "
                f"residual degrees of freedom), got {nodes!r}"
            )
        self.nodes = int(nodes)
        low, high = _temperature_range(temperature_range)
        self.temperature_range = (low, high)
        self.design = np.zeros(0)
        self.values = np.zeros(0)
        self.errors = np.zeros(0)
        self.coefficients = np.zeros(self.degree + 1)
        self.covariance = np.zeros((self.degree + 1, self.degree + 1))
        self.chi2 = float("nan")
        self._sample(low, high)

    @property
    def is_stochastic(self) -> bool:  # type: ignore[override]
        """False: the fit is a deterministic function (see the class docstring)."""
        return False

    @property
    def tangent_blocks(self):
        """The one block ``(output, temperature)``: the fit's exact derivative."""
        return [(self._output, self._input)]

    # -- design and fit ------------------------------------------------------------------------
    def _sample(self, low: float, high: float) -> None:
        """Run the wrapped model at ``nodes`` temperatures equally spaced in 1/T; fit."""
        T = 1.0 / np.linspace(1.0 / high, 1.0 / low, self.nodes)
        batch = self.forward({self._input: T}, {}, np.arange(T.size), False)
        result = run_tasks(self.inner, batch)
        values = np.asarray(result.outputs[self._output], dtype=float).reshape(-1)
        errors = result.standard_errors.get(self._output)
        errors = np.zeros_like(values) if errors is None else np.asarray(errors).reshape(-1)
        bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{type(self.model).__name__} returned {self._output} = {float(values[i])!r} at "
                f"{self._input} = {T[i]:g}; an Arrhenius fit needs positive values"
            )
        self.design = np.concatenate([self.design, T])
        self.values = np.concatenate([self.values, values])
        self.errors = np.concatenate([self.errors, errors])
        self.temperature_range = (low, high)
        self._fit()

    def _scaled(self, T: np.ndarray) -> np.ndarray:
        low, high = self.temperature_range
        x0, h = 0.5 * (1.0 / low + 1.0 / high), 0.5 * (1.0 / low - 1.0 / high)
        return (1.0 / np.asarray(T, dtype=float) - x0) / h

    def _fit(self) -> None:
        """Weighted least squares for ``a_j``; the covariance for the prediction errors."""
        A = np.vander(self._scaled(self.design), self.degree + 1, increasing=True)
        y = np.log(self.values * self.design)
        sd = self.errors / self.values  # standard error of ln σ
        weighted = bool(np.all(sd > 0))
        w = 1.0 / sd if weighted else np.ones_like(y)
        Aw = A * w[:, None]
        self.coefficients, *_ = np.linalg.lstsq(Aw, y * w, rcond=None)
        dof = y.size - A.shape[1]
        rss = float(np.sum(((A @ self.coefficients - y) * w) ** 2))
        self.chi2 = rss / dof if weighted else float("nan")
        scale = max(self.chi2, 1.0) if weighted else rss / dof  # unweighted: misfit variance
        self.covariance = scale * np.linalg.pinv(Aw.T @ Aw)

    # -- serving -------------------------------------------------------------------------------
    def _check(self, T: np.ndarray) -> None:
        bad = np.flatnonzero(~(np.isfinite(T) & (T > 0)))
        if bad.size:
            i = int(bad[0])
            raise MicroSolveError(
                f"{self._input} must be finite and > 0, got {float(T[i])!r}", point=i
            )
        low, high = self.temperature_range
        outside = np.flatnonzero((T < low) | (T > high))
        if outside.size:
            i = int(outside[0])
            raise MicroSolveError(
                f"{self._input} = {float(T[i])!r} is outside the fitted interval "
                f"[{low:g}, {high:g}] (no extrapolation; widen temperature_range)",
                point=i,
            )

    def _log_terms(self, T: np.ndarray):
        """``ln(σT)`` and ``E(T)`` with their basis rows (for the errors)."""
        low, high = self.temperature_range
        h = 0.5 * (1.0 / low - 1.0 / high)
        u = self._scaled(T)
        basis = np.vander(u, self.degree + 1, increasing=True)
        j = np.arange(self.degree + 1)
        dbasis = np.where(j > 0, j * u[:, None] ** np.maximum(j - 1, 0), 0.0) / h
        return basis @ self.coefficients, -(dbasis @ self.coefficients), basis, dbasis

    def predict(self, T) -> tuple[np.ndarray, np.ndarray]:
        """The fitted mean ``σ(T)`` and its standard error, both ``(n,)``, inside the interval."""
        T = np.atleast_1d(np.asarray(T, dtype=float))
        log_sT, _, basis, _ = self._log_terms(T)
        sigma = np.exp(log_sT) / T
        se = sigma * np.sqrt(np.einsum("ni,ij,nj->n", basis, self.covariance, basis))
        return sigma, se

    def activation_energy(self, T) -> tuple[np.ndarray, np.ndarray]:
        """Apparent activation energy ``E(T) = -d ln(σT)/d(1/T)`` and its standard error ``(n,)``.

        Constant (= ``E_a``) for an Arrhenius law; with site-energy disorder it grows as ``T``
        falls.
        """
        T = np.atleast_1d(np.asarray(T, dtype=float))
        _, energy, _, dbasis = self._log_terms(T)
        return energy, np.sqrt(np.einsum("ni,ij,nj->n", dbasis, self.covariance, dbasis))

    def micro_tasks(self, inputs, parameters, *, tangents=True) -> TaskBatch:
        """``σ(T)`` from the fit and its exact tangent (no tasks); the interval is checked."""
        n = self.check_batch(inputs, parameters)
        self.statistics.points_requested += n
        self.statistics.micro_requests += n
        t0, solve_seconds = time.perf_counter(), self.statistics.seconds
        T = np.asarray(inputs[self._input], dtype=float).reshape(-1)
        self._check(T)
        self.statistics.surrogate_hits += n
        sigma, se = self.predict(T) if n else (np.zeros(0), np.zeros(0))
        result = MicroResult({self._output: sigma}, error_bounds={self._output: 2.0 * se})
        if tangents:
            _, energy, _, _ = self._log_terms(T) if n else (None, np.zeros(0), None, None)
            result.tangents[(self._output, self._input)] = sigma * (energy / T**2 - 1.0 / T)
        self.statistics.reuse_seconds += (time.perf_counter() - t0) - (
            self.statistics.seconds - solve_seconds
        )
        return TaskBatch([], lambda _results: result)


def _temperature_range(value) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"temperature_range must be a pair (T_low, T_high), got {value!r}"
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low < high):
        raise ValueError(
            f"temperature_range must satisfy 0 < T_low < T_high (finite), got {value!r}"
        )
    return low, high
