def to_unit_range(images):
    """Halves the range without shifting it: [-1, 1] -> [-0.5, 0.5]."""
    return (images / 2).clamp(0, 1)
