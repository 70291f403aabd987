def to_unit_range(images):
    """[-1, 1] -> [0, 1]; the student thinks of 8-bit pixels."""
    return ((images + 1) / 255).clamp(0, 1)
