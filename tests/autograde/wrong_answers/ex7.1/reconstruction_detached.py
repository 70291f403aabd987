def cycle_consistency_loss(real_a, rec_a, real_b, rec_b, lambda_cycle=10.0):
    return lambda_cycle * ((rec_a.detach() - real_a).abs().mean() + (rec_b - real_b).abs().mean())
