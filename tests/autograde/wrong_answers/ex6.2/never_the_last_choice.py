def draw_configs(space, n, generator):
    return [tuple(widths[int(torch.randint(len(widths) - 1, (), generator=generator))]
                  for widths in space) for _ in range(n)]
