"""Pure ``nn`` code: no training, plotting or data imports here."""
from .blocks import BasicBlock, UpBasicBlock
from .decoder import StudentDecoder
from .dskd import DSKD, INFERENCE_PAIR, LOSS_PAIRS, STRUCTURES, DSKDOutput, Students
from .embedding import DeepFeatureEmbedding, LastLayerEmbedding
from .encoder import StudentEncoder
from .pyramid import PYRAMID_CHANNELS, PYRAMID_STRIDES, Pyramid, ResNet18Pyramid
from .teacher import (
    TEACHER_NAMES,
    TeacherPyramid,
    TeacherWeightsError,
    default_teacher_name,
    teacher_available,
    teacher_weights_from_name,
)

__all__ = [
    "BasicBlock", "UpBasicBlock", "StudentDecoder", "DSKD", "DSKDOutput", "Students", "STRUCTURES", "LOSS_PAIRS",
    "INFERENCE_PAIR", "DeepFeatureEmbedding", "LastLayerEmbedding", "StudentEncoder", "Pyramid",
    "ResNet18Pyramid", "PYRAMID_CHANNELS", "PYRAMID_STRIDES", "TeacherPyramid", "TeacherWeightsError",
    "TEACHER_NAMES", "default_teacher_name", "teacher_available", "teacher_weights_from_name",
]
