def sliced_conv(x, weight, bias, out_channels, transposed=False, stride=1, padding=0,
                output_padding=0):
    c = x.shape[1]
    b = None if bias is None else bias[-out_channels:]
    if transposed:
        return F.conv_transpose2d(x, weight[-c:, -out_channels:], b, stride, padding, output_padding)
    return F.conv2d(x, weight[-out_channels:, -c:], b, stride, padding)
