"""fe2hmm.rve.image: cells from images of phase labels (voxel meshes), for every cell problem.

Exact results on voxel laminates (diffusion: arithmetic/harmonic means; Stokes: plane Poiseuille
flow), convergence to Keller's checkerboard value and to Sangani & Acrivos's square array under
pixel refinement, sealed pores, the readers and their refusals, the shipped test image.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fe2hmm.micro.cells.diffusion import homogenize_diffusion
from fe2hmm.micro.cells.elasticity import homogenize_elasticity
from fe2hmm.micro.cells.stokes import StokesCellProblem
from fe2hmm.rve.cell import INCLUSION, MATRIX
from fe2hmm.rve.image import blobs, image_cell, read_labels

DATA = Path(__file__).resolve().parents[1] / "data"


def disk(n: int, c: float) -> np.ndarray:
    """An n × n image of a centred disk of area fraction c (pixel centres inside)."""
    x = (np.arange(n) + 0.5) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    return ((X - 0.5) ** 2 + (Y - 0.5) ** 2 < c / np.pi).astype(np.uint8)


def test_shipped_image_is_what_its_script_writes():
    import runpy

    arguments = runpy.run_path(str(DATA / "make_blobs.py"))["ARGUMENTS"]
    shipped = np.load(DATA / "blobs_64.npy")
    np.testing.assert_array_equal(shipped, blobs(**arguments))
    assert shipped.shape == (64, 64) and abs(shipped.mean() - 0.4) < 1 / 64**2


@pytest.mark.parametrize("dim", [2, 3])
def test_voxel_laminate_gives_the_means_exactly(dim):
    """Layers of labels 0/1 across x₂ (fractions 1/2, contrast 10): K* along the layers is the
    arithmetic mean, across the harmonic mean, to round-off; the cell is (0, 1) × (0, n₂/n₁)…
    and its fractions are the pixel counts."""
    shape = (4, 6) if dim == 2 else (4, 6, 2)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[:, 3:] = 1
    cell = image_cell(labels)
    np.testing.assert_allclose(cell.upper, np.array(shape) / 4)
    assert cell.volume_fractions == pytest.approx({MATRIX: 0.5, INCLUSION: 0.5}, rel=1e-12)
    K = homogenize_diffusion(cell, {MATRIX: 1.0, INCLUSION: 10.0}).effective_tensor
    expected = np.full(dim, 5.5)
    expected[1] = 1.0 / (0.5 / 1.0 + 0.5 / 10.0)
    np.testing.assert_allclose(K, np.diag(expected), atol=1e-12)


def test_voxel_checkerboard_converges_to_keller():
    """A checkerboard of conductivities 1 and 10: K* = √10 exactly (Keller 1964). The corners
    are singular, so pixels converge slowly: measured errors 13.9 %, 7.9 %, 4.5 % at 8, 16, 32
    pixels per square (rate 0.8); asserted: monotone, rates in [0.6, 1]."""
    errors = []
    for m in (8, 16, 32):
        labels = np.zeros((2 * m, 2 * m), dtype=np.uint8)
        labels[:m, :m] = labels[m:, m:] = 1
        K = homogenize_diffusion(image_cell(labels), {MATRIX: 1.0, INCLUSION: 10.0})
        K = K.effective_tensor
        assert abs(K[0, 1]) < 1e-10 and K[0, 0] == pytest.approx(K[1, 1], rel=1e-10)
        errors.append(K[0, 0] / np.sqrt(10.0) - 1)
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert all(e > 0 for e in errors) and np.all((rates > 0.6) & (rates < 1.0)), (errors, rates)


def test_voxel_channel_gives_plane_poiseuille_flow_exactly():
    """A fluid layer (label 0) of width h = 3/8 between solid pixels (label 1): K = h³/12 along
    the layer, 0 across, to round-off (P2 holds the parabola); one pore part."""
    labels = np.ones((8, 8), dtype=np.uint8)
    labels[2:5, :] = 0
    problem = StokesCellProblem(image_cell(labels))
    K = problem.solve().permeability
    np.testing.assert_allclose(K, np.diag([0.0, (3 / 8) ** 3 / 12]), atol=1e-12)
    assert problem.pore_parts == 1


def test_sealed_pores_hold_fluid_at_rest():
    """A pore sealed off by solid pixels gets its own pressure constant (2 pore parts, no
    singular system) and carries no flow: K equals that of the image with the pore filled."""
    labels = np.ones((16, 16), dtype=np.uint8)
    labels[:, 2:6] = 0  # a channel along x₂
    filled = labels.copy()
    labels[9:12, 10:13] = 0  # a sealed pore
    problem = StokesCellProblem(image_cell(labels))
    K = problem.solve().permeability
    assert problem.pore_parts == 2
    np.testing.assert_allclose(K, StokesCellProblem(image_cell(filled)).solve().permeability,
                               rtol=1e-10, atol=1e-14)  # fmt: skip


def test_voxel_disk_converges_to_the_square_array_table():
    """A pixelated cylinder of solid fraction 0.2 against Sangani & Acrivos's K = 1/51.53: the
    staircase boundary converges at first order (measured −6.5 %, −3.2 %, −1.1 % at 32, 64, 128
    pixels); asserted: the error at 64 below 4 % and at most 0.6 of that at 32."""
    exact = 1 / 51.53
    errors = [
        abs(StokesCellProblem(image_cell(disk(n, 0.2))).solve().permeability[0, 0] / exact - 1)
        for n in (32, 64)
    ]
    assert errors[1] < 0.04 and errors[1] < 0.6 * errors[0], errors


def test_elasticity_on_the_shipped_image():
    """The shipped image under the plane-strain elasticity cell (E = 1 and 10, ν = 0.3 both):
    Hill–Mandel to round-off, and C* between the Reuss and Voigt bounds, which for one ν are
    C(E=1, ν) times the harmonic and the arithmetic mean of E over the pixels (measured C*₁₁
    2.81 against 2.10 … 6.19)."""
    labels = np.load(DATA / "blobs_64.npy")
    cell = image_cell(labels)
    solution = homogenize_elasticity(cell, {MATRIX: (1.0, 0.3), INCLUSION: (10.0, 0.3)})
    f = labels.mean()
    unit = (1 - 0.3) / ((1 + 0.3) * (1 - 2 * 0.3))  # C₁₁ of E = 1, plane strain
    reuss, voigt = unit / ((1 - f) + f / 10.0), unit * ((1 - f) + 10.0 * f)
    C = solution.effective_tensor
    assert solution.hill_mandel_error < 1e-10
    assert reuss < C[0, 0] < voigt and reuss < C[1, 1] < voigt, (C, reuss, voigt)


def test_readers_agree(tmp_path):
    """.npy, .raw (with shape and dtype) and TIFF (one page in 2D, a page per x₃ slice in 3D)
    give the same labels."""
    labels = blobs((6, 5, 3), 0.3, 0.2, seed=1)
    np.save(tmp_path / "a.npy", labels)
    labels.astype(np.uint16).tofile(tmp_path / "a.raw")
    pages = [Image.fromarray(labels[:, :, k]) for k in range(3)]
    pages[0].save(tmp_path / "a.tif", save_all=True, append_images=pages[1:])
    Image.fromarray(labels[:, :, 0]).save(tmp_path / "b.tiff")
    np.testing.assert_array_equal(read_labels(tmp_path / "a.npy"), labels)
    np.testing.assert_array_equal(
        read_labels(tmp_path / "a.raw", shape=(6, 5, 3), dtype="uint16"), labels
    )
    np.testing.assert_array_equal(read_labels(tmp_path / "a.tif"), labels)
    np.testing.assert_array_equal(read_labels(tmp_path / "b.tiff"), labels[:, :, 0])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "a.png", "unknown format '.png'"),
        (lambda d: d / "missing.npy", "no such file"),
        (lambda d: (np.save(d / "f.npy", np.full((3, 3), 0.5)), d / "f.npy")[1], "integers"),
        (lambda d: (np.save(d / "n.npy", -np.eye(3, dtype=int)), d / "n.npy")[1], r"\[0, "),
        (lambda d: (np.save(d / "z.npy", np.ones((3, 3), int)), d / "z.npy")[1], "label 0"),
        (lambda d: (np.save(d / "l.npy", np.zeros(5, int)), d / "l.npy")[1], "2D or 3D"),
        (lambda d: (np.save(d / "t.npy", np.zeros((1, 5), int)), d / "t.npy")[1], "2 pixels"),
    ],
)
def test_bad_images_are_refused(tmp_path, make, message):
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match=message):
        read_labels(make(tmp_path))


def test_raw_needs_its_shape(tmp_path):
    np.zeros((4, 4), dtype=np.uint8).tofile(tmp_path / "a.raw")
    with pytest.raises(ValueError, match="a shape is needed"):
        read_labels(tmp_path / "a.raw")
    with pytest.raises(ValueError, match="16 bytes, but shape"):
        read_labels(tmp_path / "a.raw", shape=(4, 5))
    np.save(tmp_path / "a.npy", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="only for them"):
        read_labels(tmp_path / "a.npy", shape=(4, 4))
