def diffaugment_losses(G, D, real, z, T, kind="hinge"):
    """Right augmentation, but D's loss on the fakes also reaches G."""
    fake = G(z)
    loss_d = losses.d_loss(D(T(real)), D(T(fake)), kind)
    loss_g = losses.g_loss(D(T(fake)), kind)
    return loss_d, loss_g
