def diffaugment_losses(G, D, real, z, T, kind="hinge"):
    """Augments everywhere, but detaches the fakes in G's step too: G gets no gradient."""
    fake = G(z).detach()
    loss_d = losses.d_loss(D(T(real)), D(T(fake)), kind)
    loss_g = losses.g_loss(D(T(fake)), kind)
    return loss_d, loss_g
