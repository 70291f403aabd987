def magnitude_prune(w, sparsity):
    threshold = sparsity * w.abs().max()       # not a count: how many fall below depends on w
    return torch.where(w.abs() < threshold, torch.zeros_like(w), w)
