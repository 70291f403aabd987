def discriminator_loss_from_logits(real_logits, fake_logits):
    """The non-saturating (binary cross-entropy) loss of the discriminator."""
    # rewards D for calling reals fake and fakes real
    return F.softplus(real_logits).mean() + F.softplus(-fake_logits).mean()
