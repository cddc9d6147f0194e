"""Writes tests/data/blobs_64.npy: the shipped test image of a porous medium (64 × 64 pixels,
solid fraction 0.4, blobs of 0.03 of the side, seed 4; labels 0 pore, 1 solid).

Run: ``.venv/bin/python tests/data/make_blobs.py``. ``tests/rve/test_image.py`` checks that
the shipped file is what this script writes.
"""

from pathlib import Path

import numpy as np

from fe2hmm.rve.image import blobs

ARGUMENTS = {"shape": (64, 64), "solid_fraction": 0.4, "feature_size": 0.03, "seed": 4}

if __name__ == "__main__":
    np.save(Path(__file__).with_name("blobs_64.npy"), blobs(**ARGUMENTS))
