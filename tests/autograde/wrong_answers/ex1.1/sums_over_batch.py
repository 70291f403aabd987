def discriminator_loss_from_logits(real_logits, fake_logits):
    """The non-saturating (binary cross-entropy) loss of the discriminator."""
    return F.softplus(-real_logits).sum() + F.softplus(fake_logits).sum()
