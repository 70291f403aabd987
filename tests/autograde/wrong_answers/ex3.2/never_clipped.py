def rand_cutout(x, ratio=0.5, generator=None):
    """The square is always placed entirely inside the image (never clipped)."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h - size_h + 1, (n, 1, 1), generator=generator)
    left = torch.randint(0, w - size_w + 1, (n, 1, 1), generator=generator)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    hole = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~hole).unsqueeze(1).float()
