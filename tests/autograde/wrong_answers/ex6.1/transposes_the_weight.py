def sliced_conv(x, weight, bias, out_channels, transposed=False, stride=1, padding=0,
                output_padding=0):
    b = None if bias is None else bias[:out_channels]
    if transposed:
        w = weight.transpose(0, 1)[:x.shape[1], :out_channels]
        return F.conv_transpose2d(x, w, b, stride, padding, output_padding)
    return F.conv2d(x, weight[:out_channels, :x.shape[1]], b, stride, padding)
