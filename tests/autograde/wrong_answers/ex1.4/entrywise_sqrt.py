def frechet_distance_from_features(real_features, fake_features):
    real, fake = real_features.double(), fake_features.double()
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = torch.cov(real.T), torch.cov(fake.T)
    covmean = (cov_r * cov_f).abs().sqrt()                 # square root of each entry, not a matrix root
    return (((mu_r - mu_f) ** 2).sum() + torch.trace(cov_r + cov_f - 2 * covmean)).item()
