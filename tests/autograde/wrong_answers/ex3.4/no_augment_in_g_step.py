def diffaugment_losses(G, D, real, z, T, kind="hinge"):
    """T on reals and fakes in the D step, but G's step shows D the plain fakes."""
    fake = G(z)
    loss_d = losses.d_loss(D(T(real)), D(T(fake.detach())), kind)
    loss_g = losses.g_loss(D(fake), kind)
    return loss_d, loss_g
