def slerp(z0, z1, t):
    """Spherical interpolation from z0 (t = 0) to z1 (t = 1); see the exercise text."""
    # The straight line: passes through the low-norm middle of the latent ball.
    t = torch.as_tensor(t, dtype=z0.dtype)
    return (1 - t)[..., None] * z0 + t[..., None] * z1
