def to_unit_range(images):
    """[-1, 1] -> [0, 1], but values outside [-1, 1] leave [0, 1]."""
    return (images + 1) / 2
