def slerp(z0, z1, t):
    """Spherical interpolation from z0 (t = 0) to z1 (t = 1); see the exercise text."""
    t = torch.as_tensor(t, dtype=z0.dtype)
    cos = (z0 * z1).sum(-1) / (z0.norm(dim=-1) * z1.norm(dim=-1))
    omega = torch.acos(cos)  # no clamp and no fallback: 0 / 0 for parallel vectors
    w0 = torch.sin((1 - t) * omega) / torch.sin(omega)
    w1 = torch.sin(t * omega) / torch.sin(omega)
    return w0[..., None] * z0 + w1[..., None] * z1
