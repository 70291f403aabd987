def frechet_distance_from_features(real_features, fake_features):
    def gaussian(x):
        x = x.double()
        mu = x.mean(dim=0)
        centred = x - mu
        return mu, centred.T @ centred / len(x)          # divides by N, not N - 1

    mu_r, cov_r = gaussian(real_features)
    mu_f, cov_f = gaussian(fake_features)
    eigenvalues = torch.linalg.eigvals(cov_r @ cov_f).real.clamp(min=0)
    value = ((mu_r - mu_f) ** 2).sum() + cov_r.trace() + cov_f.trace() - 2 * eigenvalues.sqrt().sum()
    return max(value.item(), 0.0)
