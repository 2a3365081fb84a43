#!/usr/bin/python3
"""Writes the small .npy files of npy_data.node with numpy itself (run once with
/usr/bin/python3, Debian's python3-numpy; the files are committed): 3 samples of a
[1, 2, 2] image as float32 (k/8 for k = 0..11), their labels as int64, a [2] feature as
uint8 in format version 2.0, and a float64 weight per sample."""
import numpy as np
from numpy.lib import format as npformat

np.save("npy_images.npy", (np.arange(12, dtype=np.float32) / 8).reshape(3, 1, 2, 2))
np.save("npy_labels.npy", np.array([2, 0, 1], dtype=np.int64))
with open("npy_bytes.npy", "wb") as f:
    npformat.write_array(f, np.array([[0, 255], [7, 8], [200, 1]], dtype=np.uint8), version=(2, 0))
np.save("npy_weight.npy", np.array([0.5, -1.25, 1e-3]))
