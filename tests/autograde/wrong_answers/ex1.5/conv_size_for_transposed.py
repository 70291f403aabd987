def conv_macs(in_channels, out_channels, kernel_size, stride, padding, size, transposed=False,
              output_padding=0):
    out = (size + 2 * padding - kernel_size) // stride + 1      # the same formula for both kinds
    return out * out * out_channels * in_channels * kernel_size * kernel_size, out
