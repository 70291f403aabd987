def diffaugment_losses(G, D, real, z, T, kind="hinge"):
    """Classic data augmentation: only the real images go through T."""
    fake = G(z)
    loss_d = losses.d_loss(D(T(real)), D(fake.detach()), kind)
    loss_g = losses.g_loss(D(fake), kind)
    return loss_d, loss_g
