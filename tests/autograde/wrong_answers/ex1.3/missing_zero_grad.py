def train_step(G, D, opt_g, opt_d, real, z):
    """One D step, then one G step, with the non-saturating losses."""
    fake = G(z)
    loss_d = losses.d_loss(D(real), D(fake.detach()), "nonsaturating")
    loss_d.backward()  # adds to whatever is already in D's .grad
    opt_d.step()

    opt_g.zero_grad()
    loss_g = losses.g_loss(D(fake), "nonsaturating")
    loss_g.backward()
    opt_g.step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}
