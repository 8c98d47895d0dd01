"""fixedpoint."""
