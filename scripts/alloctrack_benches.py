"""The alloctrack-overhead bench binaries and the ratios reported between them, shared by
`bench-alloctrack.py` (time) and `bench-alloctrack-instructions.py` (instructions). Names are
the bench targets' without their `alloc-` prefix."""

BINARIES = [
    "system",
    "ours-over-system",
    "ours-sampled-over-system",
    "mimalloc",
    "ours-over-mimalloc",
    "ours-sampled-over-mimalloc",
    "tracking-allocator",
    "stats-alloc",
    "dhat",
]
RATIOS = [
    ("ours-over-system", "system"),
    ("ours-sampled-over-system", "system"),
    ("ours-over-mimalloc", "mimalloc"),
    ("ours-sampled-over-mimalloc", "mimalloc"),
    ("tracking-allocator", "system"),
    ("stats-alloc", "system"),
    ("dhat", "ours-over-system"),
]


def criterion_id(binary):
    """The benchmark id a binary reports under (criterion ids use the crate's own name)."""
    return {"stats-alloc": "stats_alloc"}.get(binary, binary)
