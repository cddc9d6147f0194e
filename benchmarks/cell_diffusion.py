"""Benchmark: seconds per effective conductivity K* against dofs, 2D and 3D.

For each cell family (circle in 2D, sphere in 3D, contrast 10, volume fraction 0.5 / 0.2) the
table gives the seconds per *distinct* cell, as FE² with many microstructures pays them: the
cell of one more volume fraction (a few per cent apart) made by morphing the family's reference
mesh (``morph``; :mod:`fe2hmm.rve.morph`) and solved by the family's cell problem, split into
assembly, set-up (periodic reduction, right-hand sides), factorisation, solve and
post-processing; ``remesh`` is the same cell meshed by gmsh and solved by a fresh problem (every
distinct cell before morphing). Compared, in the same process on the same reduced SPD system:

- ``bare``: dolfinx assembly (form compiled, matrix allocated) + a fresh MUMPS Cholesky
  factorisation + the d solves, nothing else (the lower bound for fe2hmm's approach); goal
  (morph + total)/bare <= 1.1 from 5k dofs, <= 1.3 from 1k;
- ``splu``: SciPy's SuperLU factorisation + solves of the same matrix; goal: fe2hmm's
  factorise+solve no slower.

With ``--peer-python PATH`` (a Python that has ``muspectre``), the whole-process time of
``fe2hmm homogenize diffusion`` at the resolution that reaches 0.1 % on K* is compared with
``benchmarks/peer_muspectre.py`` (µSpectre's Fourier solver on a voxel image) at the pixel
count that reaches 0.1 %: goal >= 5x faster. With ``--startup`` (implied by ``--peer-python``)
the fe2hmm process is split into its imports, by top-level package (``python -X importtime``
self times), and the rest (interpreter start, meshing, solve, exit).

Run: ``python benchmarks/cell_diffusion.py [--quick] [--peer-python PATH] [--startup] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from mpi4py import MPI  # noqa: F401  (MPI before dolfinx, as with every dolfinx script)

import numpy as np
import scipy.sparse.linalg as spla
from dolfinx import fem

from fe2hmm import analytic, rve
from fe2hmm.micro.cells.diffusion import DiffusionCellProblem
from fe2hmm.micro.cells.geometry import CellGeometry, MeshProblems
from fe2hmm.micro.cells.linalg import SPDFactorization
from fe2hmm.rve.cell import INCLUSION, MATRIX

KM, KI = 1.0, 10.0
HERE = Path(__file__).resolve().parent


def best_of(repeats, fn):
    """Minimum wall time of ``repeats`` calls and the last result."""
    best, result = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def bare_assembly(problem):
    """dolfinx assembly of the same stiffness matrix (compiled form, allocated matrix)."""
    structure = problem._structure()
    A = structure["matrix"]
    A.data[:] = 0.0
    return fem.assemble_matrix(A, structure["a"])


def measure(name, dim, f, resolution, repeats):
    geometry = CellGeometry(name, dim, resolution)
    materials = {MATRIX: KM, INCLUSION: KI}
    problems = MeshProblems(lambda cell: DiffusionCellProblem(cell, materials))
    fractions = f * (1.0 + 0.002 * np.arange(repeats + 1))  # distinct cells of one rung
    problems(geometry.create(fractions[0])).solve()  # the family's reference and problem
    morphs = []
    for phi in fractions[1:]:
        t0 = time.perf_counter()
        cell = geometry.create(phi)
        morph_seconds = time.perf_counter() - t0
        problem = problems(cell)
        morphs.append((morph_seconds, problem.solve(), problem))
    t_morph, sol, problem = min(morphs, key=lambda m: m[0] + m[1].seconds["total"])
    assert geometry.family.meshed == 1, "the fractions should share one reference"
    t_mesh, fresh_cell = best_of(
        1, lambda: rve.create(name, dim=dim, volume_fraction=f, resolution=resolution)
    )
    remeshed = DiffusionCellProblem(fresh_cell, materials).solve()
    A, B = problem.reduced_system
    t_asm, _ = best_of(repeats, lambda: bare_assembly(problem))

    def factor_solve(backend):
        factor = SPDFactorization(A, backend=backend)
        return factor.solve(B)

    t_fs, X = best_of(repeats, lambda: factor_solve("mumps"))
    A_csc = A.to_scipy().tocsc()
    t_splu, X_lu = best_of(repeats, lambda: spla.splu(A_csc).solve(np.ascontiguousarray(B)))
    assert np.allclose(X, X_lu, rtol=1e-8, atol=1e-10 * np.abs(X).max())
    K = sol.effective_tensor
    phi = float(problem.rve.parameters["volume_fraction"])
    ref = analytic.square_array_cylinders(KM, KI, phi) if dim == 2 else None
    return {
        "rve": name,
        "dim": dim,
        "resolution": resolution,
        "dofs": int(sol.dofs),
        "mesh_seconds": t_mesh,
        "morph_seconds": t_morph,
        "remesh_seconds": t_mesh + remeshed.seconds["total"],
        "split": {k: v for k, v in sol.seconds.items()},
        "seconds": t_morph + sol.seconds["total"],
        "bare_seconds": t_asm + t_fs,
        "splu_seconds": t_splu,
        "mumps_factor_solve_seconds": t_fs,
        "K11": float(K[0, 0]),
        "relative_error_vs_perrins": None if ref is None else float(abs(K[0, 0] - ref) / ref),
    }


def whole_process(cmd):
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, json.loads(out.stdout.strip().splitlines()[-1])


def cli_command(resolution, degree):
    """The one-shot CLI run of the peer comparison (K* of the square array, JSON output)."""
    return [
        sys.executable,
        "-m",
        "fe2hmm",
        "homogenize",
        "diffusion",
        "--rve",
        "circle",
        "--volume-fraction",
        "0.5",
        "--matrix",
        str(KM),
        "--inclusion",
        str(KI),
        "--resolution",
        str(resolution),
        "--degree",
        str(degree),
        "--json",
    ]


def startup_split(cmd, repeats):
    """Seconds of the whole process ``cmd`` (a Python command) and of its imports by top-level
    package (self times of ``-X importtime``, from the fastest of ``repeats`` runs)."""
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr[-2000:]}")
        if best is None or seconds < best[0]:
            best = (seconds, out.stderr)
    packages: dict[str, float] = {}
    for line in best[1].splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line[len("import time:") :].split("|")
        top = name.strip().split(".")[0]
        packages[top] = packages.get(top, 0.0) + int(own) * 1e-6
    return {"seconds": best[0], "imports": dict(sorted(packages.items(), key=lambda kv: -kv[1]))}


def print_startup(split, shown=10):
    imports = sum(split["imports"].values())
    print(f"\nfe2hmm CLI process: {split['seconds']:.2f} s, imports {imports:.2f} s (self times):")
    for name, seconds in list(split["imports"].items())[:shown]:
        print(f"  {name:>20} {seconds:6.3f} s")
    print(f"  {'other imports':>20} {sum(list(split['imports'].values())[shown:]):6.3f} s")
    print(f"  {'rest':>20} {split['seconds'] - imports:6.3f} s (interpreter, mesh, solve, exit)")


def peer_comparison(peer_python, fe2hmm_resolution, fe2hmm_degree, pixels, repeats):
    """Whole-process fe2hmm CLI vs µSpectre script, both at 0.1 % accuracy on K*."""
    ref = analytic.square_array_cylinders(KM, KI, 0.5)
    ours_cmd = cli_command(fe2hmm_resolution, fe2hmm_degree)
    peer_cmd = [
        peer_python,
        str(HERE / "peer_muspectre.py"),
        "--pixels",
        str(pixels),
        "--volume-fraction",
        "0.5",
        "--matrix",
        str(KM),
        "--inclusion",
        str(KI),
        "--json",
    ]
    t_ours, ours = best_of(repeats, lambda: whole_process(ours_cmd))
    t_peer, peer = best_of(repeats, lambda: whole_process(peer_cmd))
    ours, peer = ours[1], peer[1]
    return {
        "reference_K": ref,
        "fe2hmm": {
            "resolution": fe2hmm_resolution,
            "degree": fe2hmm_degree,
            "seconds": t_ours,
            "in_process_seconds": ours["seconds"],
            "K11": ours["effective_tensor"][0][0],
            "error": abs(ours["effective_tensor"][0][0] - ref) / ref,
        },
        "muspectre": {
            "pixels": pixels,
            "seconds": t_peer,
            "in_process_seconds": peer["seconds"],
            "K11": peer["effective_tensor"][0][0],
            "error": abs(peer["effective_tensor"][0][0] - ref) / ref,
        },
        "speedup": t_peer / t_ours,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description="diffusion cell problem benchmark")
    parser.add_argument("--quick", action="store_true", help="small cases only (smoke test)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-python", default=None, help="python with muspectre installed")
    parser.add_argument("--peer-pixels", type=int, default=513)
    parser.add_argument(
        "--fe2hmm-resolution",
        type=int,
        default=10,
        help="CLI resolution for the peer comparison (with --fe2hmm-degree: 0.1 %% accuracy)",
    )
    parser.add_argument("--fe2hmm-degree", type=int, default=2, help="CLI --degree (P2)")
    parser.add_argument(
        "--startup", action="store_true", help="split the CLI process into its imports"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cases = [("circle", 2, 0.5, r) for r in ((16, 32) if args.quick else (32, 64, 128, 256))]
    cases += [("sphere", 3, 0.2, r) for r in ((6,) if args.quick else (8, 12, 16, 20))]
    rows = [measure(*c, repeats=1 if args.quick else args.repeats) for c in cases]
    head = (
        f"{'dim':>3} {'res':>4} {'dofs':>8} {'remesh':>7} {'gmsh':>7} {'morph':>7} {'asm':>7} "
        f"{'setup':>7} {'fact':>7} {'solve':>7} {'post':>7} {'total':>7} {'bare':>7} "
        f"{'ratio':>6} {'fewer':>6} {'splu f+s':>8} {'mumps f+s':>9} {'K11 err':>8}"
    )
    print(
        "seconds per distinct cell (best of the repeats; morph + total = one more cell of the "
        "family, remesh = gmsh + a fresh problem; ratio = (morph + total) / bare, "
        "fewer = remesh / (morph + total))"
    )
    print(head)
    for r in rows:
        s = r["split"]
        err = r["relative_error_vs_perrins"]
        print(
            f"{r['dim']:>3} {r['resolution']:>4} {r['dofs']:>8} {r['remesh_seconds']:7.3f} "
            f"{r['mesh_seconds']:7.3f} {r['morph_seconds']:7.4f} "
            f"{s['assemble']:7.3f} {s['setup']:7.3f} {s['factorize']:7.3f} {s['solve']:7.3f} "
            f"{s['postprocess']:7.3f} {s['total']:7.3f} {r['bare_seconds']:7.3f} "
            f"{r['seconds'] / r['bare_seconds']:6.2f} {r['remesh_seconds'] / r['seconds']:5.1f}x "
            f"{r['splu_seconds']:8.3f} {r['mumps_factor_solve_seconds']:9.3f} "
            f"{'' if err is None else f'{err:8.1e}'}"
        )
    keys = ("dim", "dofs", "seconds", "bare_seconds", "splu_seconds", "resolution")
    keys += ("mesh_seconds", "morph_seconds", "remesh_seconds")
    result = {"cases": [{k: r[k] for k in keys} for r in rows]}
    if args.peer_python:
        peer = peer_comparison(
            args.peer_python,
            args.fe2hmm_resolution,
            args.fe2hmm_degree,
            args.peer_pixels,
            1 if args.quick else args.repeats,
        )
        print("\nwhole process, K* of a square array (f = 0.5, contrast 10) to 0.1 %:")
        for key in ("fe2hmm", "muspectre"):
            p = peer[key]
            size = p.get("resolution", p.get("pixels"))
            unit = f"elements/edge, P{p['degree']}" if key == "fe2hmm" else "pixels/edge"
            print(
                f"  {key:>9}: {size:>5} {unit}  {p['seconds']:6.2f} s whole process "
                f"({p['in_process_seconds']:.3f} s in-process)  K11 = {p['K11']:.6f}  "
                f"error {p['error']:.1e}"
            )
        print(f"  speed-up of fe2hmm: {peer['speedup']:.1f}x")
        result["peer"] = peer
    if args.startup or args.peer_python:
        command = cli_command(args.fe2hmm_resolution, args.fe2hmm_degree)
        split = startup_split(command, max(3, args.repeats))
        print_startup(split)
        result["startup"] = split
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
