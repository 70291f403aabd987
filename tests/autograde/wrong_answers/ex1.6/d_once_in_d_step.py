def training_macs(g_macs, d_macs, batch_size, steps):
    # forgets that D's step runs D on the reals AND on the fakes
    return 3 * (g_macs + 2 * d_macs) * batch_size * steps
