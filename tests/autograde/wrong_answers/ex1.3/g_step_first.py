def train_step(G, D, opt_g, opt_d, real, z):
    """One D step, then one G step, with the non-saturating losses."""
    fake = G(z)
    opt_g.zero_grad()
    loss_g = losses.g_loss(D(fake), "nonsaturating")  # G step against the old D
    loss_g.backward()
    opt_g.step()

    opt_d.zero_grad()
    loss_d = losses.d_loss(D(real), D(fake.detach()), "nonsaturating")
    loss_d.backward()
    opt_d.step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}
