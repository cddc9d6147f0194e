"""Write a generated periodic unit cell (mesh and phase tags) to XDMF for ParaView."""

import argparse

from mpi4py import MPI

from dolfinx import io

from fe2hmm import rve


def main(argv=None):
    """Parse arguments, generate the cell, write it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=rve.available())
    parser.add_argument("--dim", type=int, default=None)
    parser.add_argument("--volume-fraction", type=float, required=True)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--count", type=int, default=None, help="random: number of inclusions")
    parser.add_argument("--seed", type=int, default=None, help="random: seed")
    parser.add_argument("-o", "--output", default="rve.xdmf")
    args = parser.parse_args(argv)
    options = {k: v for k, v in (("count", args.count), ("seed", args.seed)) if v is not None}
    cell = rve.create(
        args.name,
        dim=args.dim,
        volume_fraction=args.volume_fraction,
        resolution=args.resolution,
        **options,
    )
    with io.XDMFFile(MPI.COMM_SELF, args.output, "w") as f:
        f.write_mesh(cell.mesh)
        cell.cell_tags.name = "phase"
        f.write_meshtags(cell.cell_tags, cell.mesh.geometry)
    print(
        f"wrote {args.output}: {cell.mesh.topology.index_map(cell.dim).size_local} cells, "
        f"volume fractions {cell.volume_fractions}"
    )


if __name__ == "__main__":
    main()
