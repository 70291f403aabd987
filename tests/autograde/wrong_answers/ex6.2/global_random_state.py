def draw_configs(space, n, generator):
    return [tuple(widths[int(torch.randint(len(widths), ()))] for widths in space)
            for _ in range(n)]
