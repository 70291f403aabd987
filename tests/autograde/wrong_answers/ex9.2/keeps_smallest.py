def magnitude_prune(w, sparsity):
    n_zero = round(sparsity * w.numel())
    order = torch.argsort(w.abs().flatten(), descending=True)   # the largest first: wrong end
    mask = torch.ones(w.numel(), dtype=w.dtype)
    mask[order[:n_zero]] = 0
    return w * mask.view_as(w)
