def conv_macs(in_channels, out_channels, kernel_size, stride, padding, size, transposed=False,
              output_padding=0):
    if transposed:
        out = (size - 1) * stride - 2 * padding + kernel_size
    else:
        out = (size + 2 * padding - kernel_size) // stride + 1
    return out * out * out_channels * in_channels * kernel_size * kernel_size, out
