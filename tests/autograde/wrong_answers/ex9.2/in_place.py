def magnitude_prune(w, sparsity):
    n_zero = round(sparsity * w.numel())
    order = torch.argsort(w.abs().flatten())
    w.view(-1)[order[:n_zero]] = 0             # changes the caller's weights
    return w
