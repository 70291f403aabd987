def rand_cutout(x, ratio=0.5, generator=None):
    """Always cuts the square out of the middle of the image."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top, left = (h - size_h) // 2, (w - size_w) // 2
    mask = torch.ones_like(x)
    mask[:, :, top:top + size_h, left:left + size_w] = 0
    return x * mask
