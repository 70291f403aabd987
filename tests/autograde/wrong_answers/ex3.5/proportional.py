def ada_update(p, r_t, images, target=0.6, ramp_images=500_000):
    # moves p in proportion to how far r_t is from the target
    p = p + (r_t - target) * images / ramp_images
    return min(1.0, max(0.0, p))
