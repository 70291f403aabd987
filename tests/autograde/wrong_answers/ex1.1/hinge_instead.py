def discriminator_loss_from_logits(real_logits, fake_logits):
    """The non-saturating (binary cross-entropy) loss of the discriminator."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
