def overfitting_stats(train_logits, heldout_logits, fake_logits):
    """D's accuracies and ADA's r_t, from its logits (> 0 means "D says real")."""
    acc_train = (train_logits >= 0).float().mean().item()
    acc_heldout = (heldout_logits >= 0).float().mean().item()
    return {"acc_train": acc_train, "acc_heldout": acc_heldout,
            "acc_fake": (fake_logits <= 0).float().mean().item(),
            "gap": acc_train - acc_heldout, "r_t": torch.sign(train_logits).mean().item()}
