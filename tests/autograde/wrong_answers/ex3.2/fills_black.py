def rand_cutout(x, ratio=0.5, generator=None):
    """Right square, but filled with -1 (black) instead of 0."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - size_h % 2), (n, 1, 1), generator=generator)
    cx = torch.randint(0, w + (1 - size_w % 2), (n, 1, 1), generator=generator)
    top, left = cy - size_h // 2, cx - size_w // 2
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    hole = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return torch.where(hole.unsqueeze(1), torch.full_like(x, -1.0), x)
