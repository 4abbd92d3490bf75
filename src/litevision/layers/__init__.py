"""Shared building blocks used by models and plug-in modules."""

from litevision.layers.blocks import DepthwiseSeparableConv, InvertedResidual
from litevision.layers.classifier import ClassifierHead
from litevision.layers.conv_norm_act import ConvNormAct
from litevision.layers.drop import DropPath, drop_path, drop_path_rates
from litevision.layers.fuse import fuse_bn_linear, fuse_conv_bn, fuse_model
from litevision.layers.helpers import create_act, get_act_layer, make_divisible
from litevision.layers.shuffle import ChannelShuffle
from litevision.layers.squeeze_excite import SqueezeExcite

__all__ = [
    "ChannelShuffle",
    "ClassifierHead",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "DropPath",
    "InvertedResidual",
    "SqueezeExcite",
    "create_act",
    "drop_path",
    "drop_path_rates",
    "fuse_bn_linear",
    "fuse_conv_bn",
    "fuse_model",
    "get_act_layer",
    "make_divisible",
]
