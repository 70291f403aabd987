def rand_color(x, generator=None):
    """The brightness offset is drawn for every pixel instead of once per image."""
    n = x.shape[0]
    x = x + (torch.rand(x.shape, generator=generator) - 0.5)
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * (2 * torch.rand(n, 1, 1, 1, generator=generator)) + grey
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, generator=generator) + 0.5) + mean
