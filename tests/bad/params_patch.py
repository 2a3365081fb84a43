#!/usr/bin/env python3
"""params_patch.py IN OUT OLD NEW: copies a safetensors file with OLD replaced by NEW in its
JSON header, and the header's length (its first 8 bytes) updated to match. For the
params_* cases of tests/bad, which derive broken files from params_good.params."""
import struct, sys

src, dst, old, new = sys.argv[1:5]
data = open(src, "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = data[8:8 + n].decode()
assert old in header, f"{old!r} is not in the header"
header = header.replace(old, new, 1).encode()
open(dst, "wb").write(struct.pack("<Q", len(header)) + header + data[8 + n:])
