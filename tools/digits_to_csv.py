#!/usr/bin/python3
"""Writes examples/digits_train.csv and examples/digits_test.csv from scikit-learn's copy of
the UCI "Optical Recognition of Handwritten Digits" test set (1797 8x8 images, pixel counts
0..16; Debian: apt-get install python3-sklearn; run with /usr/bin/python3).

The split is fixed: numpy.random.RandomState(0) permutes the indices of each digit in turn
(0, 1, ..., 9) and the first 36 of each go to the test set, so the test set has 360 images, 36
of every class, and the training set the other 1437; each file keeps the images in
scikit-learn's order. Pixels are divided by 16, so every value is a multiple of 0.0625 in
[0, 1], written exactly. Columns: `label` (the digit 0..9), then `x[0,0,0]` ... `x[0,7,7]`,
a rank-3 field [1, 8, 8] (channel, row, column), row-major. Rerunning reproduces the files
byte for byte. Usage: digits_to_csv.py [OUTDIR] [--npy] (default: examples/ beside this
script). --npy also writes digits_train_x.npy, digits_train_label.npy and the test set's
(float32 [N, 1, 8, 8] and int64 [N], the same numbers), for npy(x = ..., label = ...); they
are not committed."""
import os, sys

import numpy as np
from sklearn.datasets import load_digits

TEST_PER_CLASS = 36

def split(labels):
    rng = np.random.RandomState(0)
    test = []
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        test.extend(rng.permutation(idx)[:TEST_PER_CLASS].tolist())
    test = sorted(test)
    chosen = set(test)
    return [i for i in range(len(labels)) if i not in chosen], test

def write(path, images, labels, rows):
    header = ["label"] + [f'"x[0,{r},{c}]"' for r in range(8) for c in range(8)]
    with open(path, "w", newline="\n") as f:
        f.write(",".join(header) + "\n")
        for i in rows:
            pixels = (f"{v / 16:g}" for v in images[i].reshape(64))
            f.write(",".join([str(int(labels[i])), *pixels]) + "\n")

def write_npy(out, name, images, labels, rows):
    np.save(os.path.join(out, f"digits_{name}_x.npy"),
            (images[rows] / 16).astype(np.float32).reshape(len(rows), 1, 8, 8))
    np.save(os.path.join(out, f"digits_{name}_label.npy"), labels[rows].astype(np.int64))

def main():
    args = [a for a in sys.argv[1:] if a != "--npy"]
    out = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                             "..", "examples")
    digits = load_digits()
    images, labels = digits.images, digits.target
    assert images.shape == (1797, 8, 8) and images.min() >= 0 and images.max() <= 16
    train, test = split(labels)
    write(os.path.join(out, "digits_train.csv"), images, labels, train)
    write(os.path.join(out, "digits_test.csv"), images, labels, test)
    if "--npy" in sys.argv:
        write_npy(out, "train", images, labels, train)
        write_npy(out, "test", images, labels, test)
    print(f"{len(train)} training images, {len(test)} test images -> {out}")

if __name__ == "__main__":
    main()
