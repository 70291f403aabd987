def generator_loss_from_logits(fake_logits):
    """The non-saturating generator loss, -mean(log sigmoid(fake_logits))."""
    return -torch.log(torch.sigmoid(fake_logits)).mean()
