"""EgoVLPv2 model family."""

from egokit.models.config import EgoVLPv2Config, PreprocessConfig
from egokit.models.egovlpv2 import EgoVLPv2, FusionOutput
from egokit.models.registry import create_model, describe_model, get_config, list_models

__all__ = ["EgoVLPv2", "EgoVLPv2Config", "FusionOutput", "PreprocessConfig", "create_model", "describe_model",
           "get_config", "list_models"]
