def rand_translation(x, ratio=0.125, generator=None):
    """Shift with torch.roll: pixels pushed out on one side come back on the other."""
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (n,), generator=generator)
    dx = torch.randint(-max_dx, max_dx + 1, (n,), generator=generator)
    return torch.stack([torch.roll(x[i], shifts=(int(dy[i]), int(dx[i])), dims=(1, 2))
                        for i in range(n)])
