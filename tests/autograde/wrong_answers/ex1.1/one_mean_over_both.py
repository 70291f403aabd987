def discriminator_loss_from_logits(real_logits, fake_logits):
    """The non-saturating (binary cross-entropy) loss of the discriminator."""
    # one mean over reals and fakes together: weights the two terms by batch size
    return torch.cat([F.softplus(-real_logits), F.softplus(fake_logits)]).mean()
