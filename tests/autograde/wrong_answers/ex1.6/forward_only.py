def training_macs(g_macs, d_macs, batch_size, steps):
    # G once, D on reals, fakes and again in the G step: but no backward passes
    return (g_macs + 3 * d_macs) * batch_size * steps
