def diffaugment_losses(G, D, real, z, T, kind="hinge"):
    """Augments the generator's input instead of the images D sees."""
    fake = G(T(z))
    loss_d = losses.d_loss(D(T(real)), D(fake.detach()), kind)
    loss_g = losses.g_loss(D(fake), kind)
    return loss_d, loss_g
