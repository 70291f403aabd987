def rand_translation(x, ratio=0.125, generator=None):
    """Per-image zero-filled shifts, but torch.randint(-m, m) never draws +m."""
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy, (n, 1, 1), generator=generator)
    dx = torch.randint(-max_dx, max_dx, (n, 1, 1), generator=generator)
    padded = torch.nn.functional.pad(x, (max_dx, max_dx, max_dy, max_dy)).permute(0, 2, 3, 1)
    batch = torch.arange(n).view(n, 1, 1)
    rows = torch.arange(h).view(1, h, 1) + dy + max_dy
    cols = torch.arange(w).view(1, 1, w) + dx + max_dx
    return padded[batch, rows, cols].permute(0, 3, 1, 2)
