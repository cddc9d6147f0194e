"""The micro-model contract: batched maps from macro inputs and per-point parameters to outputs.

A micro-model never sees dolfinx objects of the macro problem. It receives named NumPy arrays
shaped ``(n_points, *shape)`` and returns named arrays of the same leading length. The
reference implementation is :class:`fe2hmm.micro.cells.diffusion.DiffusionCellModel`.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field

import numpy as np

from fe2hmm.errors import MicroSolveError

__all__ = ["MicroModel", "LinearMicroModel", "MicroResult", "MicroStatistics"]

_log = logging.getLogger(__name__)

Shape = tuple[int, ...]


@dataclass
class MicroResult:
    """What a micro-model returns for a batch of ``n`` points.

    Attributes:
        outputs: output name -> array ``(n, *output_shape)``.
        tangents: ``(output, input)`` -> ∂output/∂input, array ``(n, *output_shape, *input_shape)``.
            Empty when tangents were not requested.
        standard_errors: output name -> statistical standard error ``(n, *output_shape)``, for
            stochastic models; empty for deterministic ones.
    """

    outputs: dict[str, np.ndarray]
    tangents: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    standard_errors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class MicroStatistics:
    """Counters a micro-model keeps over its lifetime (rank-local).

    Attributes:
        points_requested: quadrature-point evaluations asked for.
        micro_solves: real micro problems solved (cell solves, simulations).
        seconds: wall time spent inside micro solves.
    """

    points_requested: int = 0
    micro_solves: int = 0
    seconds: float = 0.0
    cache_hits: int = 0

    def as_dict(self) -> dict:
        """Return the counters as a plain dict (for JSON reports)."""
        return {
            "points_requested": self.points_requested,
            "micro_solves": self.micro_solves,
            "seconds": self.seconds,
            "cache_hits": self.cache_hits,
        }


class MicroModel(abc.ABC):
    """Abstract micro-model: a batch function ``(inputs, parameters) -> outputs (+ tangents)``.

    Subclasses declare the names and per-point shapes of their inputs, outputs and parameters,
    and implement :meth:`evaluate`. They must not keep one Python object per point.
    """

    #: True when outputs are linear in the inputs (an effective tensor per microstructure).
    is_linear: bool = False
    #: True when outputs carry statistical noise (then ``standard_errors`` are returned).
    is_stochastic: bool = False

    def __init__(self) -> None:
        self.statistics = MicroStatistics()

    @property
    @abc.abstractmethod
    def input_shapes(self) -> dict[str, Shape]:
        """Input name -> per-point shape, e.g. ``{"gradient": (2,)}``."""

    @property
    @abc.abstractmethod
    def output_shapes(self) -> dict[str, Shape]:
        """Output name -> per-point shape, e.g. ``{"flux": (2,)}``."""

    @property
    def parameter_shapes(self) -> dict[str, Shape]:
        """Per-point parameter name -> shape, e.g. ``{"volume_fraction": ()}``. Default none."""
        return {}

    @abc.abstractmethod
    def evaluate(
        self,
        inputs: dict[str, np.ndarray],
        parameters: dict[str, np.ndarray],
        *,
        tangents: bool = True,
    ) -> MicroResult:
        """Evaluate the micro-model at a batch of points.

        Args:
            inputs: input name -> array ``(n, *input_shape)``.
            parameters: parameter name -> array ``(n, *parameter_shape)``.
            tangents: also return ∂output/∂input.

        Returns:
            The outputs (and tangents) for all ``n`` points.

        Raises:
            MicroSolveError: a micro solve failed; ``point`` is the index in this batch.
        """

    def check_batch(self, inputs: dict[str, np.ndarray], parameters: dict[str, np.ndarray]) -> int:
        """Validate names and shapes of a batch and return its number of points.

        Raises:
            ValueError: on missing/unknown names, wrong shapes, inconsistent lengths or
                non-finite values.
        """
        n = None
        for kind, given, declared in (
            ("input", inputs, self.input_shapes),
            ("parameter", parameters, self.parameter_shapes),
        ):
            missing = set(declared) - set(given)
            extra = set(given) - set(declared)
            if missing or extra:
                raise ValueError(
                    f"{type(self).__name__} expects {kind}s {sorted(declared)}, got {sorted(given)}"
                )
            for name, shape in declared.items():
                arr = np.asarray(given[name])
                if arr.shape[1:] != tuple(shape):
                    raise ValueError(
                        f"{kind} {name!r} must have shape {('n', *shape)}, got {arr.shape}"
                    )
                if n is None:
                    n = arr.shape[0]
                elif arr.shape[0] != n:
                    raise ValueError(
                        f"{kind} {name!r} has {arr.shape[0]} points, expected {n} like the others"
                    )
                bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise MicroSolveError(
                        f"non-finite {kind} {name!r} = {arr[i]!r} passed to {type(self).__name__}",
                        point=i,
                    )
        return 0 if n is None else int(n)


class LinearMicroModel(MicroModel):
    """A micro-model whose outputs are linear in its inputs: ``out = Σ_in T[out, in] · in``.

    Only :meth:`effective_tensors` (one microstructure at a time) needs implementing. Points
    whose parameters agree within :attr:`parameter_tolerance` share one micro solve.

    Args:
        parameter_tolerance: absolute tolerance under which two parameter sets are identical.
            ``0`` (default) means bitwise-equal values only. With a positive tolerance the values
            are binned to multiples of it, and every point of a bin uses the tensor computed at
            the first point of that bin: the error this adds is bounded by the tensor's
            variation over one bin width.
    """

    is_linear = True

    def __init__(self, parameter_tolerance: float = 0.0) -> None:
        super().__init__()
        if not (parameter_tolerance >= 0.0 and np.isfinite(parameter_tolerance)):
            raise ValueError(
                f"parameter_tolerance must be a finite number >= 0, got {parameter_tolerance!r}"
            )
        self.parameter_tolerance = float(parameter_tolerance)
        self.cache = None

    def cache_identity(self) -> dict:
        """Everything besides the per-point parameters that determines the tensors.

        Subclasses that support :meth:`enable_cache` return a JSON-serialisable dict (model
        name and version, geometry generator, materials, resolution, boundary condition, …).
        """
        raise NotImplementedError(f"{type(self).__name__} does not define a cache identity")

    def enable_cache(self, directory) -> None:
        """Keep effective tensors in a persistent on-disk cache (see :mod:`fe2hmm.reuse.cache`).

        Args:
            directory: cache directory; entries are keyed by :meth:`cache_identity` and the
                parameters, so a change of either never returns a stale tensor.
        """
        from fe2hmm.reuse.cache import PersistentCache

        self.cache = PersistentCache(directory, self.cache_identity())

    @abc.abstractmethod
    def effective_tensors(
        self, parameters: dict[str, np.ndarray]
    ) -> dict[tuple[str, str], np.ndarray]:
        """Solve the micro problem for ONE set of parameters.

        Args:
            parameters: name -> array of the declared parameter shape (no leading point axis).

        Returns:
            ``(output, input)`` -> tensor of shape ``(*output_shape, *input_shape)``.
        """

    def tensors(
        self, parameters: dict[str, np.ndarray], n: int
    ) -> dict[tuple[str, str], np.ndarray]:
        """Effective tensors at ``n`` points, one micro solve per distinct parameter set.

        Args:
            parameters: name -> ``(n, *shape)``.
            n: number of points.

        Returns:
            ``(output, input)`` -> ``(n, *output_shape, *input_shape)``.

        Raises:
            MicroSolveError: naming the first point that uses the failed parameter set.
        """
        import time

        names = sorted(self.parameter_shapes)
        if names:
            rows = np.concatenate(
                [np.asarray(parameters[k], dtype=float).reshape(n, -1) for k in names], axis=1
            )
        else:
            rows = np.zeros((n, 0))
        keys = (
            rows if self.parameter_tolerance == 0.0 else np.round(rows / self.parameter_tolerance)
        )
        _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        result: dict[tuple[str, str], np.ndarray] = {}
        for u, i in enumerate(first):
            point_parameters = {k: np.asarray(parameters[k])[i] for k in names}
            cached = self.cache.get(point_parameters) if self.cache is not None else None
            if cached is not None:
                self.statistics.cache_hits += 1
                for flat, tensor in cached.items():
                    key = tuple(flat.split("|"))
                    if key not in result:
                        result[key] = np.empty((len(first), *np.shape(tensor)))
                    result[key][u] = tensor
                continue
            t0 = time.perf_counter()
            try:
                tensors = self.effective_tensors(point_parameters)
            except MicroSolveError as err:
                raise MicroSolveError(
                    str(err.args[0]), point=int(i), parameters=point_parameters
                ) from err
            except (ValueError, RuntimeError, ArithmeticError) as err:
                raise MicroSolveError(
                    f"{type(self).__name__} failed: {err}",
                    point=int(i),
                    parameters=point_parameters,
                ) from err
            self.statistics.seconds += time.perf_counter() - t0
            self.statistics.micro_solves += 1
            for key, tensor in tensors.items():
                if not np.all(np.isfinite(tensor)):
                    raise MicroSolveError(
                        f"{type(self).__name__} returned a non-finite tensor {key}",
                        point=int(i),
                        parameters=point_parameters,
                    )
                if key not in result:
                    result[key] = np.empty((len(first), *np.shape(tensor)))
                result[key][u] = tensor
            if self.cache is not None:
                self.cache.put(point_parameters, {"|".join(k): t for k, t in tensors.items()})
        _log.debug("%s: %d points, %d distinct micro solves", type(self).__name__, n, len(first))
        return {key: value[inverse] for key, value in result.items()}

    def evaluate(
        self,
        inputs: dict[str, np.ndarray],
        parameters: dict[str, np.ndarray],
        *,
        tangents: bool = True,
        tensors: dict[tuple[str, str], np.ndarray] | None = None,
    ) -> MicroResult:
        """Outputs ``Σ_in T·input`` with one solve per distinct parameter set.

        Args:
            inputs: input name -> ``(n, *input_shape)``.
            parameters: parameter name -> ``(n, *parameter_shape)``.
            tangents: also return the tensors as tangents.
            tensors: precomputed tensors from :meth:`tensors` (skips the micro solves).

        Returns:
            Outputs and (optionally) tangents for all points.
        """
        n = self.check_batch(inputs, parameters)
        self.statistics.points_requested += n
        if tensors is None:
            tensors = self.tensors(parameters, n)
        outputs = {}
        for out, oshape in self.output_shapes.items():
            value = np.zeros((n, *oshape))
            for inp in self.input_shapes:
                t = tensors.get((out, inp))
                if t is None:
                    continue
                x = np.asarray(inputs[inp], dtype=float).reshape(n, -1)
                tm = t.reshape(n, int(np.prod(oshape, dtype=int)), x.shape[1])
                value += np.einsum("nij,nj->ni", tm, x).reshape(n, *oshape)
            outputs[out] = value
        return MicroResult(outputs=outputs, tangents=dict(tensors) if tangents else {})
