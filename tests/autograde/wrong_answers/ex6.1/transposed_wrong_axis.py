def sliced_conv(x, weight, bias, out_channels, transposed=False, stride=1, padding=0,
                output_padding=0):
    w = weight[:out_channels, :x.shape[1]]          # the conv's axes, also for the transposed conv
    b = None if bias is None else bias[:out_channels]
    if transposed:
        return F.conv_transpose2d(x, w, b, stride, padding, output_padding)
    return F.conv2d(x, w, b, stride, padding)
