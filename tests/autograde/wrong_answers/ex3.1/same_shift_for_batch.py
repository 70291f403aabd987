def rand_translation(x, ratio=0.125, generator=None):
    """Zero-filled integer shift, but one shift drawn for the whole batch."""
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = int(torch.randint(-max_dy, max_dy + 1, (1,), generator=generator))
    dx = int(torch.randint(-max_dx, max_dx + 1, (1,), generator=generator))
    padded = torch.nn.functional.pad(x, (max_dx, max_dx, max_dy, max_dy))
    return padded[:, :, max_dy + dy:max_dy + dy + h, max_dx + dx:max_dx + dx + w]
