def precision_recall(real_feats, fake_feats, k=3):
    from scipy.spatial.distance import cdist

    real_radii = np.sort(cdist(real_feats, real_feats), axis=1)[:, k]
    d = cdist(real_feats, fake_feats)                                  # [N, M]
    precision = (d <= real_radii[:, None]).any(axis=0).mean()
    recall = (d <= real_radii[:, None]).any(axis=1).mean()            # the real balls again
    return float(precision), float(recall)
