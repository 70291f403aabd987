def rand_color(x, generator=None):
    """Contrast scales each channel around its own mean instead of the image mean."""
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * (2 * torch.rand(n, 1, 1, 1, generator=generator)) + grey
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, generator=generator) + 0.5) + mean
