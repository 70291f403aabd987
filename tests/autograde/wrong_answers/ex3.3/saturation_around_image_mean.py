def rand_color(x, generator=None):
    """Saturation scales around the image's mean rather than each pixel's channel mean."""
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (2 * torch.rand(n, 1, 1, 1, generator=generator)) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, generator=generator) + 0.5) + mean
