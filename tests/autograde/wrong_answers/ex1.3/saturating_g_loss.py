def train_step(G, D, opt_g, opt_d, real, z):
    """One D step, then one G step, with the non-saturating losses."""
    fake = G(z)
    opt_d.zero_grad()
    loss_d = losses.d_loss(D(real), D(fake.detach()), "nonsaturating")
    loss_d.backward()
    opt_d.step()

    opt_g.zero_grad()
    loss_g = -F.softplus(D(fake)).mean()  # log(1 - D(G(z)))
    loss_g.backward()
    opt_g.step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}
