"""One definition of each unit of size; every figure says which it is in.

Decimal (GB, MB) where a documented target counts that way ("VRAM < 18 GB", RSS growth in MB/h); binary
(GiB, MiB) where the thing itself is counted in powers of two: a card's memory as NVIDIA sells it ("24 GB" is
24 GiB), upload limits as ComfyUI's --max-upload-size and nginx's client_max_body_size take them.
"""
from __future__ import annotations

MB, GB = 10**6, 10**9
MiB, GiB = 2**20, 2**30
