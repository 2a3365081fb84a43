#!/usr/bin/env python3
"""Writes a .npy file byte by byte for the npy_* goldens (their `# setup:` lines), so a
broken file can be spelled out: npy_write.py OUT HEADER DATA_BYTES [VERSION [FILL]]
HEADER is the dict text as the file should hold it, DATA_BYTES how many bytes follow it
(FILL, a byte given in hex, default 00), VERSION the format's major version (default 1;
0 writes no magic at all). The header is padded as numpy pads it (to 64 bytes, newline)."""
import struct, sys

out, header, nbytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
version = int(sys.argv[4]) if len(sys.argv) > 4 else 1
fill = bytes([int(sys.argv[5], 16)]) if len(sys.argv) > 5 else b"\0"
width = 2 if version == 1 else 4
text = header.encode("latin-1")
pad = (-(6 + 2 + width + len(text) + 1)) % 64
text += b" " * pad + b"\n"
with open(out, "wb") as f:
    if version:
        f.write(b"\x93NUMPY" + bytes([version, 0]))
        f.write(struct.pack("<H" if width == 2 else "<I", len(text)))
    f.write(text + fill * nbytes)
