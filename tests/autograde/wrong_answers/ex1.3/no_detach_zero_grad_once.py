def train_step(G, D, opt_g, opt_d, real, z):
    """One D step, then one G step, with the non-saturating losses."""
    opt_d.zero_grad()
    opt_g.zero_grad()
    fake = G(z)
    loss_d = losses.d_loss(D(real), D(fake), "nonsaturating")  # D's loss backpropagates into G too
    loss_d.backward(retain_graph=True)
    opt_d.step()

    loss_g = losses.g_loss(D(fake), "nonsaturating")
    loss_g.backward()
    opt_g.step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}
