"""One module per parser family; each defines ``TARGETS: dict[str, Target]``."""
