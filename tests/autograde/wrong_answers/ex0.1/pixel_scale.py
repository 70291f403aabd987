def to_unit_range(images):
    """Converts to 0..255 pixel values instead of [0, 1]."""
    return ((images + 1) * 127.5).clamp(0, 255)
