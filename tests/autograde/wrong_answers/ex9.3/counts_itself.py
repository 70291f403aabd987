def precision_recall(real_feats, fake_feats, k=3):
    from scipy.spatial.distance import cdist

    def radii(points):
        return np.sort(cdist(points, points), axis=1)[:, k - 1]    # column 0 is the point itself

    precision = (cdist(fake_feats, real_feats) <= radii(real_feats)[None, :]).any(axis=1).mean()
    recall = (cdist(real_feats, fake_feats) <= radii(fake_feats)[None, :]).any(axis=1).mean()
    return float(precision), float(recall)
