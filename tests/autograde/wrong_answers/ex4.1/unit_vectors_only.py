def slerp(z0, z1, t):
    """Spherical interpolation from z0 (t = 0) to z1 (t = 1); see the exercise text."""
    t = torch.as_tensor(t, dtype=z0.dtype)
    # Normalises the latents and interpolates the unit vectors: the length is lost.
    u0 = z0 / z0.norm(dim=-1, keepdim=True)
    u1 = z1 / z1.norm(dim=-1, keepdim=True)
    omega = torch.acos((u0 * u1).sum(-1).clamp(-1, 1))
    s = torch.sin(omega)
    small = s.abs() < 1e-6
    s = torch.where(small, torch.ones_like(s), s)
    w0 = torch.where(small, 1 - t, torch.sin((1 - t) * omega) / s)
    w1 = torch.where(small, t, torch.sin(t * omega) / s)
    return w0[..., None] * u0 + w1[..., None] * u1
