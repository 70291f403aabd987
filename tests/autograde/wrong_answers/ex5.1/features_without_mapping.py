def distillation_loss(student_out, teacher_out, student_feats, teacher_feats, mapper_weights,
                      lambda_recon=10.0, lambda_distill=0.01):
    pixel = (student_out - teacher_out.detach()).abs().mean()
    # compares the features directly, without the learnable 1x1 conv
    feature = sum(((s - t.detach()) ** 2).mean() for s, t in zip(student_feats, teacher_feats))
    return lambda_recon * pixel + lambda_distill * feature
