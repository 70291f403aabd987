def frechet_distance_from_features(real_features, fake_features):
    # only compares where the two sets sit, not how they spread
    return ((real_features.double().mean(0) - fake_features.double().mean(0)) ** 2).sum().item()
