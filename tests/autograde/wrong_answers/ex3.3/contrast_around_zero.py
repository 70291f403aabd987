def rand_color(x, generator=None):
    """Contrast multiplies the image by the factor, forgetting to centre it on its mean."""
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * (2 * torch.rand(n, 1, 1, 1, generator=generator)) + grey
    return x * (torch.rand(n, 1, 1, 1, generator=generator) + 0.5)
