def discriminator_loss_from_logits(real_logits, fake_logits):
    """The non-saturating (binary cross-entropy) loss of the discriminator."""
    # mathematically right, numerically not: log(sigmoid(-200)) is -inf in float32
    return -torch.log(torch.sigmoid(real_logits)).mean() - torch.log(1 - torch.sigmoid(fake_logits)).mean()
