def training_macs(g_macs, d_macs, batch_size, steps):
    # G forward in D's step, then forward + backward again in G's step
    return (g_macs + 3 * g_macs + 9 * d_macs) * batch_size * steps
