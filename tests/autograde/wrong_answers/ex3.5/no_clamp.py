def ada_update(p, r_t, images, target=0.6, ramp_images=500_000):
    step = images / ramp_images
    if r_t > target:
        return p + step
    if r_t < target:
        return p - step
    return p
