"""GAN models: DCGAN (32x32 and 64x64), the CycleGAN ResNet generator and its mobile variant."""
from course_lib.models.cyclegan import ResnetBlock, ResnetGenerator, load_cyclegan_generator
from course_lib.models.dcgan import DCGANDiscriminator, DCGANGenerator
from course_lib.models.mobile_resnet import MobileResnetGenerator

__all__ = [
    "DCGANGenerator",
    "DCGANDiscriminator",
    "MobileResnetGenerator",
    "ResnetBlock",
    "ResnetGenerator",
    "load_cyclegan_generator",
]
