r"""Cells from images: a 2D/3D array of phase labels (e.g. a segmented micro-CT stack) as a cell.

:func:`read_labels` reads the labels from ``.npy``, ``.raw`` (headerless, with its shape and
dtype) or TIFF (a single page in 2D, a multi-page stack in 3D; Pillow); :func:`image_cell`
meshes them with voxel elements: every pixel (voxel) becomes 2 triangles (6 tetrahedra) of one
structured mesh, so opposite faces match and the cell is periodic for every cell problem
(diffusion, elasticity, Stokes). Label ``k`` becomes the cell tag ``k + 1``: label 0 is the
matrix (:data:`~fe2hmm.rve.cell.MATRIX`; the fluid of a Stokes cell), label 1 the inclusion
(:data:`~fe2hmm.rve.cell.INCLUSION`; the grains of a Stokes cell), further labels further
phases, whose materials the cell problems take by tag. Reading and checking an image needs
neither dolfinx nor gmsh (the command line checks ``--image`` first); :func:`image_cell` meshes
without gmsh.

Axes: array axis ``k`` is the coordinate :math:`x_{k+1}` (``labels[i, j]`` is the pixel at
:math:`x_1 \in (i h, (i + 1) h)`, :math:`x_2 \in (j h, (j + 1) h)`); for a TIFF stack the pages
are the last axis. The pixel size is :math:`h = 1/n_1`: the cell is one unit long along
:math:`x_1`, so its effective tensors are in units of that length (a permeability divided by its
square). :func:`blobs` makes periodic test images (a porous medium of random blobs). The cell
problems impose periodicity: an image that is not periodic (a scan cut out
of a larger sample) gets a boundary layer of the size of its features at the faces.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fe2hmm.rve.cell import RVE

__all__ = ["IMAGE_SUFFIXES", "blobs", "check_labels", "image_cell", "read_labels"]

#: File suffixes :func:`read_labels` understands.
IMAGE_SUFFIXES = (".npy", ".raw", ".tif", ".tiff")

#: Largest label: the cell tags ``label + 1`` are int32.
_MAX_LABEL = 2**31 - 2


def check_labels(labels: np.ndarray) -> np.ndarray:
    """The labels as an ``int64`` array, or a one-line ``ValueError`` (before any meshing).

    Args:
        labels: an array of non-negative integer phase labels, 2D or 3D, at least 2 pixels
            (voxels) along every axis, holding label 0 (the matrix).

    Raises:
        ValueError: wrong dimension, too few pixels, non-integer, negative or too large labels,
            no pixel of label 0.
    """
    array = np.asarray(labels)
    if array.ndim not in (2, 3):
        raise ValueError(f"image labels must be a 2D or 3D array, got shape {array.shape}")
    if min(array.shape) < 2:
        raise ValueError(
            f"image labels need at least 2 pixels along every axis, got shape {array.shape}"
        )
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError("image labels must be integers, got non-integer values")
    elif array.dtype.kind not in "iub":
        raise ValueError(f"image labels must be integers, got dtype {array.dtype}")
    array = array.astype(np.int64)
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > _MAX_LABEL:
        raise ValueError(f"image labels must be in [0, {_MAX_LABEL}], got {low} .. {high}")
    if not np.any(array == 0):
        raise ValueError("the image has no pixel of label 0 (the matrix phase)")
    return array


def read_labels(
    path: str | Path, shape: tuple[int, ...] | None = None, dtype: str = "uint8"
) -> np.ndarray:
    """Read phase labels from ``.npy``, ``.raw`` or TIFF.

    Args:
        path: the file; its suffix (:data:`IMAGE_SUFFIXES`) decides the format.
        shape: the array shape of a ``.raw`` file (C order, ``(n1, n2[, n3])``), required there
            and refused elsewhere.
        dtype: the element type of a ``.raw`` file (a NumPy dtype name).

    Returns:
        The labels, checked (:func:`check_labels`), ``int64``.

    Raises:
        ValueError: unknown suffix, a missing or unreadable file, a ``.raw`` file whose size
            does not match ``shape`` and ``dtype``, bad labels.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"image {str(path)!r}: unknown format {suffix!r}; valid: {IMAGE_SUFFIXES}")
    if not path.is_file():
        raise ValueError(f"image {str(path)!r}: no such file")
    if (shape is not None) != (suffix == ".raw"):
        raise ValueError(f"image {str(path)!r}: a shape is needed for .raw files and only for them")
    try:
        if suffix == ".npy":
            labels = np.load(path, allow_pickle=False)
        elif suffix == ".raw":
            labels = _read_raw(path, tuple(int(n) for n in shape), np.dtype(dtype))
        else:
            labels = _read_tiff(path)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(f"image {str(path)!r}: {err}") from None
    return check_labels(labels)


def _read_raw(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    expected = int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        raise ValueError(
            f"{size} bytes, but shape {shape} of {dtype} needs {expected}; check the shape and "
            "the dtype"
        )
    return np.fromfile(path, dtype=dtype).reshape(shape)


def _read_tiff(path: Path) -> np.ndarray:
    from PIL import Image  # only for TIFF

    with Image.open(path) as image:
        pages = []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            pages.append(np.array(image))
    return pages[0] if len(pages) == 1 else np.stack(pages, axis=-1)


def image_cell(labels: np.ndarray, name: str = "image") -> RVE:
    """The periodic voxel cell of an image of phase labels (rank-local, no gmsh).

    Args:
        labels: phase labels, shape ``(n1, n2[, n3])`` (see the module doc: axes, pixel size
            ``1/n1``, tag = label + 1).
        name: the cell's name (reports).

    Returns:
        The cell on the box ``(0, 1) × (0, n2/n1)[ × (0, n3/n1)]``, one tag per label present;
        its nominal volume fractions are the label counts (exactly what is meshed).

    Raises:
        ValueError: bad labels (:func:`check_labels`).
    """
    from mpi4py import MPI

    from dolfinx import mesh as dmesh

    from fe2hmm.rve.cell import MATRIX, RVE

    labels = check_labels(labels)
    shape = labels.shape
    d = labels.ndim
    h = 1.0 / shape[0]
    upper = np.array(shape, dtype=float) * h
    if d == 2:
        mesh = dmesh.create_rectangle(
            MPI.COMM_SELF, [np.zeros(2), upper], list(shape), dmesh.CellType.triangle
        )
    else:
        mesh = dmesh.create_box(
            MPI.COMM_SELF, [np.zeros(3), upper], list(shape), dmesh.CellType.tetrahedron
        )
    n_cells = mesh.topology.index_map(d).size_local
    cells = np.arange(n_cells, dtype=np.int32)
    midpoints = dmesh.compute_midpoints(mesh, d, cells)[:, :d]
    voxel = np.minimum(np.floor(midpoints / h).astype(np.int64), np.array(shape) - 1)
    tags = (labels[tuple(voxel.T)] + MATRIX).astype(np.int32)
    cell_tags = dmesh.meshtags(mesh, d, cells, tags)
    values, counts = np.unique(labels, return_counts=True)
    fractions = {int(v) + MATRIX: c / labels.size for v, c in zip(values, counts, strict=True)}
    fractions = {tag: float(f) for tag, f in fractions.items()}
    return RVE(
        mesh=mesh,
        cell_tags=cell_tags,
        lower=np.zeros(d),
        upper=upper,
        name=name,
        nominal_volume_fractions=fractions,
        parameters={"image_shape": list(shape), "resolution": int(shape[0])},
    )


def blobs(
    shape: tuple[int, ...], solid_fraction: float, feature_size: float = 0.1, seed: int = 0
) -> np.ndarray:
    """A periodic image of random solid blobs in a pore space (labels 0 pore, 1 solid).

    A white-noise field smoothed by a periodic Gaussian filter of standard deviation
    ``feature_size`` (in units of the image's first side; FFT, so the image is periodic), then
    thresholded at the quantile that makes the solid pixels ``solid_fraction`` of the image (to
    one pixel). The recipe of porespy's ``blobs`` generator, made periodic.

    Args:
        shape: pixels per axis, 2 or 3 entries >= 2.
        solid_fraction: the fraction of solid (label 1) pixels, in (0, 1).
        feature_size: the filter width relative to the first side, > 0.
        seed: the NumPy random seed.

    Returns:
        Labels ``uint8`` of ``shape``.

    Raises:
        ValueError: bad shape, fraction or feature size.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) < 2:
        raise ValueError(f"shape must have 2 or 3 entries >= 2, got {shape}")
    if not 0.0 < solid_fraction < 1.0:
        raise ValueError(f"solid_fraction must be in (0, 1), got {solid_fraction!r}")
    if not (np.isfinite(feature_size) and feature_size > 0):
        raise ValueError(f"feature_size must be a finite number > 0, got {feature_size!r}")
    noise = np.random.default_rng(seed).standard_normal(shape)
    sigma = feature_size * shape[0]  # pixels
    frequencies = np.meshgrid(*(np.fft.fftfreq(n) for n in shape), indexing="ij")
    kernel = np.exp(-2.0 * np.pi**2 * sigma**2 * sum(f**2 for f in frequencies))
    field = np.real(np.fft.ifftn(np.fft.fftn(noise) * kernel))
    threshold = np.quantile(field, 1.0 - solid_fraction)
    return (field > threshold).astype(np.uint8)
