def slerp(z0, z1, t):
    """Spherical interpolation from z0 (t = 0) to z1 (t = 1); see the exercise text."""
    # Treats the batch as one long vector: one angle for all rows.
    t = float(t) if not torch.is_tensor(t) or t.dim() == 0 else t.reshape(-1)[0].item()
    a, b = z0.flatten(), z1.flatten()
    cos = (a @ b) / (a.norm() * b.norm())
    omega = torch.acos(cos.clamp(-1, 1))
    s = torch.sin(omega)
    if s.abs() < 1e-6:
        return (1 - t) * z0 + t * z1
    return torch.sin((1 - t) * omega) / s * z0 + torch.sin(t * omega) / s * z1
