def rand_cutout(x, ratio=0.5, generator=None):
    """Right holes, but cut one image at a time in a Python loop (slow for big batches)."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    out = x.clone()
    for i in range(n):
        cy = int(torch.randint(0, h + (1 - size_h % 2), (1,), generator=generator))
        cx = int(torch.randint(0, w + (1 - size_w % 2), (1,), generator=generator))
        top, left = max(cy - size_h // 2, 0), max(cx - size_w // 2, 0)
        out[i, :, top:cy - size_h // 2 + size_h, left:cx - size_w // 2 + size_w] = 0
    return out
