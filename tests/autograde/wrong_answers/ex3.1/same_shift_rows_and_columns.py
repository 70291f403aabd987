def rand_translation(x, ratio=0.125, generator=None):
    """One random number per image used for both the row and the column shift."""
    n, _, h, w = x.shape
    m = int(h * ratio + 0.5)
    d = torch.randint(-m, m + 1, (n, 1, 1), generator=generator)
    padded = torch.nn.functional.pad(x, (m, m, m, m)).permute(0, 2, 3, 1)
    batch = torch.arange(n).view(n, 1, 1)
    rows = torch.arange(h).view(1, h, 1) + d + m
    cols = torch.arange(w).view(1, 1, w) + d + m
    return padded[batch, rows, cols].permute(0, 3, 1, 2)
