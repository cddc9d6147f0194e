r"""Micro-transient diffusion cells: space–time averaged flux over a micro window.

The periodic cell with conductivity :math:`k(y)` and storage coefficient (volumetric heat
capacity) :math:`c(y)` is driven by a macro gradient :math:`G(t)`; its fluctuation :math:`w`
(periodic, :math:`c`-weighted zero mean) obeys

.. math:: c\,\partial_t w - \nabla\cdot\big(k\,(G(t) + \nabla w)\big) = 0 \quad\text{in } Y,

and the flux the macro problem sees is the average over the cell and a time window,
:math:`\bar q = -\frac{1}{T}\int\langle k\,(G + \nabla w)\rangle\,\mathrm{d}t`.

The cell is linear with fixed coefficients, so it is solved exactly in time by its modes: the
generalised eigenproblem :math:`A\varphi_i = \lambda_i M\varphi_i` of the periodic stiffness
:math:`A` and storage matrix :math:`M` (dense, once per microstructure). With
:math:`b_i = \varphi_i^\top B/\sqrt{\lambda_i |Y|}` (``B`` couples the macro gradient into the
cell) and the modal state :math:`s_i` the cell obeys

.. math:: \dot s_i = -\lambda_i\,(s_i + b_i\cdot G), \qquad
          q = -\bar K G - \textstyle\sum_i b_i s_i ,

with :math:`\bar K = \langle k\rangle` (Voigt) and :math:`K^* = \bar K - \sum_i b_i b_i^\top`
(the stationary cell problem's tensor, exactly). A step response relaxes from :math:`\bar K` to
:math:`K^*` on the times :math:`1/\lambda_i`; its integral time scale is the cell's relaxation
time :math:`\tau_\mathrm{relax} = \operatorname{tr}\sum_i b_i b_i^\top/\lambda_i \,/\,
\operatorname{tr}(\bar K - K^*)`. Modes that do not couple to the gradient (:math:`b_i = 0`,
e.g. by symmetry) are dropped.
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.linalg
import ufl
from dolfinx import fem

from fe2hmm.micro.cells.geometry import CellGeometry, CellProblems, MeshProblems, SharedMeshProblem
from fe2hmm.micro.cells.periodic import PeriodicDofMap
from fe2hmm.micro.cells.phases import phase_field, phase_materials, phase_name
from fe2hmm.micro.cells.sparse import CSRMatrix
from fe2hmm.micro.interface import MicroResult, StatefulMicroModel
from fe2hmm.rve.cell import INCLUSION, MATRIX, RVE

__all__ = ["SCHEMES", "CellModes", "CellModesProblem", "TransientDiffusionCellModel", "cell_modes"]

#: Macro time schemes: the macro gradient over a step is constant (its end value) or linear.
SCHEMES = ("backward_euler", "crank_nicolson")

#: Modes whose weight ``|b_i|²`` is below this fraction of ``tr(K̄ − K*)`` are not kept.
MODE_WEIGHT_TOLERANCE = 1e-12


class CellModes:
    """The modal description of one transient diffusion cell (unit quantities of its RVE box).

    Attributes:
        rates: decay rates ``λ_i`` of the kept modes (1/s for the RVE's own size), shape ``(m,)``.
        couplings: ``b_i``, shape ``(m, d)``; ``K̄ − K* = Σ b_i b_iᵀ``.
        mean_conductivity: ``K̄ = ⟨k⟩``, shape ``(d, d)``.
        effective_tensor: ``K*``, shape ``(d, d)``.
        mean_storage: ``⟨c⟩``.
        dofs: periodic cell unknowns.
        dropped_weight: ``tr Σ b bᵀ`` of the modes not kept (relative to ``tr(K̄ − K*)``).
        seconds: assembly + eigen-decomposition wall time.
    """

    def __init__(self, rates, couplings, mean_conductivity, mean_storage, dofs, dropped, seconds):
        self.rates = rates
        self.couplings = couplings
        self.mean_conductivity = mean_conductivity
        self.effective_tensor = mean_conductivity - couplings.T @ couplings
        self.mean_storage = float(mean_storage)
        self.dofs = int(dofs)
        self.dropped_weight = float(dropped)
        self.seconds = float(seconds)

    def window_tensor(self, window: float, time_scale: float = 1.0) -> np.ndarray:
        """``K_τ``: the flux response to a unit gradient step, averaged over ``[0, τ]``.

        ``K_τ = K* + Σ b_i b_iᵀ φ(λ_i τ)`` with ``φ(x) = (1 − e⁻ˣ)/x``: ``K̄`` for ``τ → 0``,
        ``K*`` for ``τ → ∞`` (where ``K_τ − K* ≈ Σ b bᵀ/(λ τ)``).

        Args:
            window: ``τ`` (s), >= 0; ``math.inf`` gives ``K*``.
            time_scale: factor dividing the rates (``(ℓ/period)²`` for a scaled cell).
        """
        x = self.rates / time_scale * float(window)
        return self.effective_tensor + (self.couplings.T * _phi(x)) @ self.couplings


def _phi(x: np.ndarray) -> np.ndarray:
    """``(1 − e⁻ˣ)/x`` (1 at 0, 0 at ∞), stable for all ``x >= 0``."""
    x = np.asarray(x, dtype=float)
    out = np.ones_like(x)
    big = x > 1e-8
    xb = x[big]
    with np.errstate(invalid="ignore"):
        out[big] = np.where(np.isinf(xb), 0.0, -np.expm1(-xb) / xb)
    out[~big] = 1.0 - 0.5 * x[~big]
    return out


def _psi(x: np.ndarray) -> np.ndarray:
    """``(1 − φ(x))/x = (x − 1 + e⁻ˣ)/x²`` (1/2 at 0, 0 at ∞), stable for all ``x >= 0``."""
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    small = x < 1e-3
    xs = x[small]
    out[small] = 0.5 - xs / 6.0 + xs**2 / 24.0
    xb = x[~small]
    with np.errstate(invalid="ignore"):
        out[~small] = np.where(np.isinf(xb), 0.0, (xb + np.expm1(-xb)) / xb**2)
    return out


def _check_phase(value, phase: int) -> tuple[float, float]:
    try:
        k, c = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"phase {phase_name(phase)} must be (conductivity, storage), two numbers > 0, "
            f"got {value!r}"
        ) from None
    if not (k > 0 and c > 0 and math.isfinite(k) and math.isfinite(c)):
        raise ValueError(
            f"phase {phase_name(phase)} needs conductivity > 0 and storage > 0 (finite), "
            f"got conductivity={k!r}, storage={c!r}"
        )
    return k, c


class CellModesProblem(SharedMeshProblem):
    """The modal decomposition of a periodic transient diffusion cell (see :func:`cell_modes`).

    Built once per cell mesh: :meth:`for_cell` gives the problem on another (morphed) cell of
    the same mesh, sharing the function space, the phase fields, the compiled forms, the matrix
    patterns and the periodic map (:class:`fe2hmm.micro.cells.geometry.MeshProblems`).

    Args:
        rve: the unit cell; every phase must be given.
        properties: phase tag -> ``(conductivity k > 0, storage c > 0)`` (isotropic phases).
        degree: Lagrange degree.
        max_dofs: refuse cells with more periodic unknowns (the dense eigen-decomposition costs
            ``O(n³)``; 6000 takes ~1 min on one core).

    Raises:
        ValueError: missing/invalid phase properties.
    """

    def __init__(
        self,
        rve: RVE,
        properties: dict[int, tuple[float, float]],
        degree: int = 1,
        max_dofs: int = 6000,
    ) -> None:
        self.properties = phase_materials(rve, properties, _check_phase, "(conductivity, storage)")
        self.rve, self.degree, self.max_dofs = rve, int(degree), int(max_dofs)
        self._shared: dict = {}

    def _structure(self) -> dict:
        if self._shared:
            return self._shared
        s: dict = {}  # filled completely, then shared (a failure leaves nothing half-built)
        rve, props = self.rve, self.properties
        k = phase_field(rve, {p: kp for p, (kp, _) in props.items()})
        c = phase_field(rve, {p: cp for p, (_, cp) in props.items()})
        V = fem.functionspace(rve.mesh, ("Lagrange", self.degree))
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        s["V"], s["coefficients"] = V, (k, c)
        s["forms"] = (
            fem.form(k * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx),
            fem.form(c * u * v * ufl.dx),
        )
        s["matrices"] = tuple(fem.create_matrix(f) for f in s["forms"])
        s["pmap"] = PeriodicDofMap(V, rve.lower, rve.upper)
        self._shared.update(s)
        return self._shared

    def solve(self) -> CellModes:
        """Assemble on the cell's nodes and decompose.

        Returns:
            The kept modes, ``K̄``, ``K*`` and ``⟨c⟩``.

        Raises:
            ValueError: more periodic unknowns than ``max_dofs``.
        """
        t0 = time.perf_counter()
        rve = self.rve
        rve.place_nodes()  # a morphed cell: its nodes in the family's mesh
        s = self._structure()
        V, pmap, d = s["V"], s["pmap"], rve.dim
        if pmap.num_reduced > self.max_dofs:
            raise ValueError(
                f"the transient cell has {pmap.num_reduced} periodic unknowns, more than "
                f"max_dofs={self.max_dofs} (dense eigen-decomposition); lower the RVE resolution"
            )
        n = V.dofmap.index_map.size_local
        assembled = []
        for form, matrix in zip(s["forms"], s["matrices"], strict=True):
            matrix.data[:] = 0.0
            fem.assemble_matrix(matrix, form)
            assembled.append(CSRMatrix.from_dolfinx(matrix, n))
        A, M = assembled
        X = V.tabulate_dof_coordinates()[:n, :d] - np.asarray(rve.lower)
        Ar = pmap.reduce_matrix(A).toarray()
        Mr = pmap.reduce_matrix(M).toarray()
        B = pmap.reduce_vector(A @ X)  # (n_r, d): ∫ k G·∇v for unit G
        volume = rve.volume
        K_bar = X.T @ (A @ X) / volume
        lam, phi = scipy.linalg.eigh(Ar, Mr)
        keep = lam > 1e-9 * lam.max()  # the constant mode has λ = 0 and no coupling
        lam, phi = lam[keep], phi[:, keep]
        b = (phi.T @ B) / np.sqrt(lam * volume)[:, None]
        weight = (b**2).sum(axis=1)
        total = weight.sum()
        kept = weight > MODE_WEIGHT_TOLERANCE * max(total, np.finfo(float).tiny)
        dropped = weight[~kept].sum() / total if total > 0 else 0.0
        ones = np.ones(n)
        mean_c = ones @ (M @ ones) / volume
        return CellModes(
            lam[kept], b[kept], K_bar, mean_c, Ar.shape[0], dropped, time.perf_counter() - t0
        )


def cell_modes(
    rve: RVE,
    properties: dict[int, tuple[float, float]],
    degree: int = 1,
    max_dofs: int = 6000,
) -> CellModes:
    """Modes of the periodic transient diffusion cell (dense generalised eigenproblem).

    Args: those of :class:`CellModesProblem`.

    Returns:
        The kept modes, ``K̄``, ``K*`` and ``⟨c⟩``.

    Raises:
        ValueError: missing/invalid phase properties, too many dofs.
    """
    return CellModesProblem(rve, properties, degree, max_dofs).solve()


def _coefficients(x: np.ndarray, kind: str, theta: float) -> tuple:
    """Per-mode coefficients of the averaged and end states (see :meth:`_advance`).

    ``s̄ = α1 (b·G1) + α0 (b·G0) + σ s0`` and ``s_end = e1 (b·G1) + e0 (b·G0) + E s0``; the
    ``K̄`` part of the averaged flux is ``−K̄ (w1 G1 + w0 G0)``.
    """
    phi = _phi(x)
    decay = np.where(np.isinf(x), 0.0, np.exp(-np.minimum(x, 745.0)))
    if kind == "backward_euler":
        return (-(1 - phi), 0 * phi, phi, -(1 - decay), 0 * phi, decay, 1.0, 0.0)
    if kind == "crank_nicolson":
        psi = _psi(x)
        return (-0.5 + psi, -0.5 + phi - psi, phi, -1 + phi, decay - phi, decay, 0.5, 0.5)
    # "window": restart from equilibrium with G0, constant G_θ over the window, no end state
    a1 = -theta * (1 - phi)
    a0 = -(1 - theta) * (1 - phi) - phi
    return (a1, a0, 0 * phi, None, None, None, theta, 1.0 - theta)


class TransientDiffusionCellModel(StatefulMicroModel):
    r"""Micro-model: the space–time averaged flux of a transient diffusion cell over a window.

    Inputs ``{"gradient": (d,), "previous_gradient": (d,)}`` (the macro gradient at the end
    and at the start of the macro step, ``∇T`` and ``∇T_n``), outputs ``{"flux": (d,),
    "storage": ()}`` (the averaged flux, physical sign, and ``⟨c⟩`` for the macro storage
    term), parameter ``{"volume_fraction": ()}``. The macro θ-step of
    ``⟨c⟩ ∂_t T − ∇·q = f`` is then ``∫ ⟨c⟩ (T − T_n)/Δt v − q·∇v − f_θ v dx = 0``.

    The micro window (``window``):

    - ``None`` (default): the cell lives through every macro step, from the state the previous
      step left (its *memory*; committed by :meth:`commit`), and the flux is averaged over the
      whole step. Exact for the linear cell: the history of the macro gradient enters through
      the cell's slow modes. Before the first step each cell is in equilibrium with the
      ``previous_gradient`` it first sees.
    - ``τ`` (finite, ``0 < τ <= Δt``): the HMM micro window. Each step the cell restarts from
      equilibrium with the gradient at the start of the step, is driven by ``G_θ`` for ``τ``,
      and the flux is averaged over ``[0, τ]``: ``q̄ = −K* G_θ − (K_τ − K*)(G_θ − G_n)``. No
      per-point state; right when the cell relaxes within a step (``τ_relax ≪ Δt``).
    - ``math.inf``: the stationary closure ``q = −K* G_θ``.

    ``scheme`` is the macro time scheme: ``"backward_euler"`` (the gradient over the step is
    its end value, θ = 1) or ``"crank_nicolson"`` (linear in time, θ = ½); in the stationary
    limit they are the θ-schemes with fluxes ``−K*∇T`` and ``−K*(∇T + ∇T_n)/2``.

    Args:
        rve: generator name (see :func:`fe2hmm.rve.create`).
        matrix: ``(conductivity, storage)`` of the matrix, both > 0 (W/(m K), J/(m³ K)).
        inclusion: ``(conductivity, storage)`` of the inclusion.
        dim: 2 or 3.
        cell_size: physical edge length ``ℓ`` (m) of the cell; its rates scale with ``1/ℓ²``.
        window: see above (s).
        scheme: one of :data:`SCHEMES`.
        resolution: RVE resolution (generator default if None).
        degree: Lagrange degree of the cell.
        rve_options: extra generator options.
        max_dofs: see :func:`cell_modes`.
        morph: make the cells by morphing a few reference meshes (:mod:`fe2hmm.rve.morph`);
            ``False`` meshes every cell.

    Raises:
        ValueError: invalid phases, window, scheme or cell size.
    """

    def __init__(
        self,
        rve: str = "circle",
        matrix: tuple[float, float] = (1.0, 1.0),
        inclusion: tuple[float, float] = (10.0, 1.0),
        dim: int = 2,
        cell_size: float = 1.0,
        window: float | None = None,
        scheme: str = "backward_euler",
        resolution: int | None = None,
        degree: int = 1,
        rve_options: dict | None = None,
        max_dofs: int = 6000,
        morph: bool = True,
    ) -> None:
        super().__init__()
        self.geometry = CellGeometry(rve, dim, resolution, rve_options or {}, morph)
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; valid: {SCHEMES}")
        if not (cell_size > 0 and math.isfinite(cell_size)):
            raise ValueError(f"cell_size must be a finite length > 0, got {cell_size!r}")
        if window is not None and not (window > 0):
            raise ValueError(f"window must be None, a time > 0 or math.inf, got {window!r}")
        self.phases = phase_materials(
            self.geometry,
            {MATRIX: matrix, INCLUSION: inclusion},
            _check_phase,
            "(conductivity, storage)",
        )
        self.dim = self.geometry.dim
        self.cell_size, self.window, self.scheme = float(cell_size), window, scheme
        self.degree = int(degree)
        self.max_dofs = int(max_dofs)
        self.time_step: float | None = None
        self._mode_problems = MeshProblems(
            lambda cell: CellModesProblem(cell, self.phases, self.degree, self.max_dofs)
        )
        self._modes: CellProblems[tuple[CellModes, float]] = CellProblems(  # modes, RVE period
            self.geometry,
            lambda cell: (self._mode_problems(cell).solve(), float(cell.period.max())),
            shares_mesh=True,  # the modes are arrays: the cell's mesh is not used afterwards
        )
        self._state: np.ndarray | None = None  # committed modal states (n, m_max)
        self._state_key: np.ndarray | None = None  # volume fraction the state belongs to
        self._trial: np.ndarray | None = None

    @property
    def input_shapes(self):
        """``{"gradient": (d,), "previous_gradient": (d,)}``."""
        return {"gradient": (self.dim,), "previous_gradient": (self.dim,)}

    @property
    def output_shapes(self):
        """``{"flux": (d,), "storage": ()}``."""
        return {"flux": (self.dim,), "storage": ()}

    @property
    def parameter_shapes(self):
        """``{"volume_fraction": ()}``."""
        return {"volume_fraction": ()}

    @property
    def theta(self) -> float:
        """Weight of the end-of-step gradient: 1 (backward Euler) or ½ (Crank–Nicolson)."""
        return 1.0 if self.scheme == "backward_euler" else 0.5

    def set_time_step(self, dt: float) -> None:
        """Set the macro step ``Δt`` (s) of the next evaluations.

        Raises:
            ValueError: ``dt`` not > 0, or a finite window longer than ``dt``.
        """
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"time step must be a finite time > 0, got {dt!r}")
        if self.window is not None and math.isfinite(self.window) and self.window > dt * (1 + 1e-9):
            raise ValueError(
                f"the micro window τ={self.window:g} s is longer than the macro step Δt={dt:g} s; "
                "use window <= time step (or window=None to follow the cell through the step)"
            )
        self.time_step = float(dt)

    def modes(self, volume_fraction: float) -> tuple[CellModes, float]:
        """The cell's modes and the rate divisor ``(ℓ/period)²`` for one volume fraction.

        The modes are computed once per volume fraction (counted as a micro solve); changing
        :attr:`cell_size` later only rescales their rates.
        """
        if volume_fraction not in self._modes:
            t0 = time.perf_counter()
            self._modes(volume_fraction)
            self.statistics.micro_solves += 1
            self.statistics.seconds += time.perf_counter() - t0
        modes, period = self._modes(volume_fraction)
        return modes, (self.cell_size / period) ** 2

    def relaxation_time(self, volume_fraction: float) -> float:
        """``τ_relax`` (s) of the cell at its physical size (0 for a homogeneous cell).

        The integral time of the flux step response, ``tr Σ b bᵀ/λ / tr(K̄ − K*)``: for
        ``τ ≫ τ_relax``, ``tr(K_τ − K*) ≈ tr(K̄ − K*) τ_relax/τ``.
        """
        modes, scale = self.modes(volume_fraction)
        weight = (modes.couplings**2).sum(axis=1)
        if not weight.sum() > 0:
            return 0.0
        return float(scale * (weight / modes.rates).sum() / weight.sum())

    def effective_tensor(self, volume_fraction: float) -> np.ndarray:
        """The stationary ``K*``, shape ``(d, d)``."""
        return self.modes(volume_fraction)[0].effective_tensor

    def window_tensor(self, volume_fraction: float, window: float) -> np.ndarray:
        """``K_τ`` (see :meth:`CellModes.window_tensor`) at the physical cell size."""
        modes, scale = self.modes(volume_fraction)
        return modes.window_tensor(window, scale)

    def evaluate(self, inputs, parameters, *, tangents=True):
        """Averaged flux and ``⟨c⟩`` per point; the trial end states are kept for :meth:`commit`.

        Raises:
            RuntimeError: no time step set, or a point's volume fraction changed under its
                carried state.
        """
        if self.time_step is None:
            raise RuntimeError("set the macro time step first: model.set_time_step(dt)")
        n = self.check_batch(inputs, parameters)
        self.statistics.points_requested += n
        self.statistics.micro_requests += n
        t0 = time.perf_counter()
        d = self.dim
        G1 = np.asarray(inputs["gradient"], dtype=float)
        G0 = np.asarray(inputs["previous_gradient"], dtype=float)
        fractions = np.asarray(parameters["volume_fraction"], dtype=float)
        keys, group = np.unique(fractions, return_inverse=True)
        group = group.reshape(-1)
        memory = self.window is None
        if memory and self._state is not None:
            if self._state.shape[0] != n or not np.array_equal(self._state_key, fractions):
                raise RuntimeError(
                    "the points or their volume fractions changed under the carried micro state; "
                    "a transient cell's memory belongs to one microstructure per point"
                )
        m_max = max(self.modes(key)[0].rates.size for key in keys) if n else 0
        flux = np.empty((n, d))
        storage = np.empty(n)
        T1 = np.empty((n, d, d))
        T0 = np.empty((n, d, d))
        trial = np.zeros((n, m_max)) if memory else None
        for g, key in enumerate(keys):
            idx = np.flatnonzero(group == g)
            modes, scale = self.modes(key)
            lam, b = modes.rates / scale, modes.couplings
            m = lam.size
            if memory:
                kind, length = self.scheme, self.time_step
            else:
                kind, length = "window", self.window
            a1, a0, sig, e1, e0, E, w1, w0 = _coefficients(lam * length, kind, self.theta)
            bG1, bG0 = G1[idx] @ b.T, G0[idx] @ b.T  # (n_g, m)
            if memory:
                s0 = self._state[idx, :m] if self._state is not None else -bG0
            else:
                s0 = np.zeros_like(bG0)
            s_mean = a1 * bG1 + a0 * bG0 + sig * s0
            K = modes.mean_conductivity
            flux[idx] = -(w1 * G1[idx] + w0 * G0[idx]) @ K.T - s_mean @ b
            storage[idx] = modes.mean_storage
            T1[idx] = -(w1 * K + (b.T * a1) @ b)
            T0[idx] = -(w0 * K + (b.T * a0) @ b)
            if memory:
                trial[idx, :m] = e1 * bG1 + e0 * bG0 + E * s0
        self._trial = trial
        self.statistics.reuse_seconds += time.perf_counter() - t0
        result = MicroResult({"flux": flux, "storage": storage})
        if tangents:
            result.tangents = {
                ("flux", "gradient"): T1,
                ("flux", "previous_gradient"): T0,
                ("storage", "gradient"): np.zeros((n, d)),
                ("storage", "previous_gradient"): np.zeros((n, d)),
            }
        self._last_fractions = fractions.copy()
        return result

    def commit(self) -> None:
        """Accept the last evaluation's end-of-step cell states (no-op unless ``window=None``)."""
        if self._trial is not None:
            self._state = self._trial
            self._state_key = self._last_fractions
        self._trial = None

    def rollback(self) -> None:
        """Discard the last evaluation's states (the committed memory is unchanged)."""
        self._trial = None

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """The carried cell states (``window=None``; none yet: empty arrays) and counters."""
        out = self.statistics.checkpoint_state()
        if self._state is not None:
            out.update(state=self._state, state_key=self._state_key)
        return out

    def restore_state(self, state) -> None:
        """Make the arrays of :meth:`checkpoint_state` the carried state (no trial)."""
        self._state = state["state"].copy() if "state" in state else None
        self._state_key = state["state_key"].copy() if "state_key" in state else None
        self._trial = None
        self.statistics.restore_state(state)

    def reset(self) -> None:
        """Forget the carried cell states (the next step starts from equilibrium again)."""
        self._state = self._state_key = self._trial = None
