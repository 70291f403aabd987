def rand_color(x, generator=None):
    """Saturation scales by u ~ U(0, 1) instead of 2u ~ U(0, 2): colours only ever fade."""
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * torch.rand(n, 1, 1, 1, generator=generator) + grey
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, generator=generator) + 0.5) + mean
