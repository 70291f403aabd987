def ada_update(p, r_t, images, target=0.6, ramp_images=500_000):
    step = images / ramp_images
    p = p - step if r_t > target else (p + step if r_t < target else p)   # less augmentation when D overfits
    return min(1.0, max(0.0, p))
