def to_unit_range(images):
    """Right values, but computed in place: the caller's images change."""
    return images.add_(1).div_(2).clamp_(0, 1)
