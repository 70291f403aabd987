def distillation_loss(student_out, teacher_out, student_feats, teacher_feats, mapper_weights,
                      lambda_recon=10.0, lambda_distill=0.01):
    pixel = (student_out - teacher_out).abs().mean()
    feature = sum(((F.conv2d(s, w) - t) ** 2).mean()
                  for s, w, t in zip(student_feats, mapper_weights, teacher_feats))
    return lambda_recon * pixel + lambda_distill * feature
