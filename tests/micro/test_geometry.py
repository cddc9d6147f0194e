"""Cell geometry of the micro-models (fe2hmm.micro.cells.geometry): validation and per-φ cache."""

import math

import numpy as np
import pytest

from fe2hmm import rve
from fe2hmm.micro.cells.diffusion import DiffusionCellModel
from fe2hmm.micro.cells.elasticity import ElasticityCellModel
from fe2hmm.micro.cells.evolving import StateDependentDiffusionCellModel
from fe2hmm.micro.cells.geometry import CellGeometry, CellProblems
from fe2hmm.micro.cells.hyperelastic import HyperelasticCellModel
from fe2hmm.micro.cells.plasticity import PlasticCellModel
from fe2hmm.micro.cells.transient import TransientDiffusionCellModel
from fe2hmm.rve.cell import INCLUSION, MATRIX


@pytest.fixture
def no_meshing(monkeypatch):
    """Any attempt to mesh a cell fails the test."""

    def mesh(*args, **kwargs):
        raise AssertionError("a cell was meshed")

    monkeypatch.setattr("fe2hmm.rve.generators._generate", mesh)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": "blob"}, r"unknown 2D RVE generator 'blob'; valid: \['circle'"),
        ({"name": "sphere", "dim": 2}, "unknown 2D RVE generator 'sphere'"),
        ({"name": "circle", "dim": 4}, "dim must be 2 or 3, got 4"),
        ({"name": "circle", "dim": True}, "dim must be 2 or 3"),
        ({"name": "circle", "resolution": 1}, "resolution must be None or an integer >= 2"),
        ({"name": "circle", "resolution": 8.0}, "resolution must be None or an integer >= 2"),
    ],
)
def test_bad_generator_arguments_are_one_line_errors(kwargs, match, no_meshing):
    with pytest.raises(ValueError, match=match) as info:
        CellGeometry(**kwargs)
    assert "\n" not in str(info.value)


def test_arguments_are_kept_as_given():
    options = {"aspect_ratio": 3.0}
    geometry = CellGeometry("ellipse", 2, None, options)
    options["aspect_ratio"] = 5.0  # a copy is kept
    assert geometry.options == {"aspect_ratio": 3.0}
    assert geometry.resolution is None and geometry.dim == 2
    assert isinstance(CellGeometry("circle", np.int64(2)).dim, int)


@pytest.mark.parametrize(
    "name,dim,options",
    [
        ("circle", 2, {}),
        ("voids", 3, {}),
        ("laminate", 2, {}),
        ("ellipse", 2, {"aspect_ratio": 3.0, "angle": 0.4}),
        ("random", 2, {"count": 4}),
    ],
)
def test_volume_fraction_check_agrees_with_the_generator(name, dim, options, monkeypatch):
    # the generator validates before meshing: replace the meshing and compare verdicts
    monkeypatch.setattr("fe2hmm.rve.generators._generate", lambda *args: "meshed")
    monkeypatch.setattr("fe2hmm.rve.generators._place_random", lambda *args: None)
    geometry = CellGeometry(name, dim, 8, options)
    fmax = rve.max_volume_fraction(name, dim, resolution=8, **options)
    for f in (-0.1, 0.0, 1e-3, 0.5 * fmax, fmax, min(fmax * (1 + 1e-9), 1.0), 1.0, math.nan):
        try:
            rve.create(name, dim=dim, volume_fraction=f, resolution=8, **options)
            accepted = True
        except ValueError:
            accepted = False
        if accepted:
            assert geometry.check_volume_fraction(f) == f
        else:
            with pytest.raises(ValueError, match=f"{name}: volume_fraction=.* is outside"):
                geometry.check_volume_fraction(f)


def test_phases_are_those_the_generator_meshes():
    for name in ("circle", "voids"):
        geometry = CellGeometry(name, 2, 8)
        assert list(geometry.phases) == geometry.create(0.3).phases
    assert CellGeometry("voids", 3).phases == (MATRIX,)
    assert CellGeometry("laminate", 3).phases == (MATRIX, INCLUSION)


def test_problems_are_built_once_per_volume_fraction():
    geometry = CellGeometry("circle", 2, 8)
    built = []

    def build(cell):
        built.append(cell)
        return ("problem", cell.volume_fractions[INCLUSION])

    problems = CellProblems(geometry, build)
    assert 0.3 not in problems and len(problems) == 0
    first = problems(0.3)
    assert problems(np.float64(0.3)) is first  # keyed by float(volume_fraction)
    assert problems(np.array(0.3)) is first
    second = problems(0.2)
    assert len(built) == 2 and len(problems) == 2 and list(problems) == [0.3, 0.2]
    assert first == ("problem", pytest.approx(0.3)) and second[1] == pytest.approx(0.2)
    assert 0.3 in problems and "x" not in problems
    problems.clear()
    assert len(problems) == 0
    problems(0.3)
    assert len(built) == 3


def test_a_bad_volume_fraction_fails_before_meshing(no_meshing):
    problems = CellProblems(CellGeometry("circle", 2, 8), lambda cell: cell)
    with pytest.raises(ValueError, match=r"circle: volume_fraction=0.9 is outside"):
        problems(0.9)
    assert len(problems) == 0


# (model, valid materials, an invalid inclusion)
MODELS = [
    (DiffusionCellModel, {"matrix": 1.0, "inclusion": 10.0}, -1.0),
    (ElasticityCellModel, {"matrix": (1.0, 0.3), "inclusion": (10.0, 0.3)}, (-1.0, 0.3)),
    (HyperelasticCellModel, {"matrix": (1.0, 0.3), "inclusion": (10.0, 0.3)}, (1.0, 0.7)),
    (
        PlasticCellModel,
        {"matrix": (1.0, 0.3, 0.01, 0.1), "inclusion": (10.0, 0.3, np.inf, 0.0)},
        (10.0, 0.3, -1.0, 0.0),
    ),
    (TransientDiffusionCellModel, {"matrix": (1.0, 1.0), "inclusion": (10.0, 1.0)}, (1.0, 0.0)),
]


@pytest.mark.parametrize("model,materials,bad", MODELS)
def test_every_cell_model_checks_its_cell_before_meshing(model, materials, bad, no_meshing):
    with pytest.raises(ValueError, match="unknown 2D RVE generator 'blob'"):
        model(rve="blob", **materials)
    with pytest.raises(ValueError, match=r"no .* given for phase\(s\) 2 \(inclusion\)"):
        model(rve="circle", **dict(materials, inclusion=None))
    with pytest.raises(ValueError, match=r"phase 2 \(inclusion\)") as info:
        model(rve="circle", **dict(materials, inclusion=bad))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="resolution"):
        model(rve="circle", resolution=0, **materials)
    # a voids cell meshes no inclusion: its material is not checked
    built = model(rve="voids", **dict(materials, inclusion=bad))
    assert built.geometry.phases == (MATRIX,)


def test_the_evolving_model_checks_its_fixed_volume_fraction(no_meshing):
    with pytest.raises(ValueError, match=r"circle: volume_fraction=0.8 is outside"):
        StateDependentDiffusionCellModel(lambda s: {}, volume_fraction=0.8)
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        StateDependentDiffusionCellModel(lambda s: {}, dim=1)
