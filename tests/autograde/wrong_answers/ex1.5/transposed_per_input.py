def conv_macs(in_channels, out_channels, kernel_size, stride, padding, size, transposed=False,
              output_padding=0):
    if transposed:
        out = (size - 1) * stride - 2 * padding + kernel_size + output_padding
        # counts the useful work: one kernel per input pixel
        return size * size * out_channels * in_channels * kernel_size * kernel_size, out
    out = (size + 2 * padding - kernel_size) // stride + 1
    return out * out * out_channels * in_channels * kernel_size * kernel_size, out
