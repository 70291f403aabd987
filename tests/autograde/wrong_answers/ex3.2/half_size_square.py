def rand_cutout(x, ratio=0.5, generator=None):
    """Centre anywhere and clipped, but the square's half-size used as its size."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio / 2 + 0.5), int(w * ratio / 2 + 0.5)
    cy = torch.randint(0, h, (n, 1, 1), generator=generator)
    cx = torch.randint(0, w, (n, 1, 1), generator=generator)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    hole = ((rows - cy).abs() <= size_h // 2) & ((cols - cx).abs() <= size_w // 2)
    return x * (~hole).unsqueeze(1).float()
