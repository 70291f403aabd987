def training_macs(g_macs, d_macs, batch_size, steps):
    return 2 * (g_macs + 3 * d_macs) * batch_size * steps
