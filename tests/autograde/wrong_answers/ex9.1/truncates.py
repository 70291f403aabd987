def linear_quantize(w, bits, clip=None):
    if clip is None:
        clip = float(w.abs().max())
    if clip == 0:
        return torch.zeros_like(w)
    q_max = 2 ** (bits - 1) - 1
    scale = clip / q_max
    q = torch.clamp((w / scale).int(), -q_max, q_max)   # int() rounds towards zero
    return q.to(w.dtype) * scale
