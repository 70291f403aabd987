def draw_configs(space, n, generator):
    configs = []
    for _ in range(n):
        k = int(torch.randint(len(space[0]), (), generator=generator))
        configs.append(tuple(widths[min(k, len(widths) - 1)] for widths in space))
    return configs
