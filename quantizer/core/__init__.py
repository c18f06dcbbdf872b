"""Pure PyTorch/numpy quantizer core: arrays in, arrays out. No Django imports here."""

from .assignment import Encoded, encode
from .baselines import residual_kmeans
from .config import AssignmentConfig, LossConfig, ModelConfig, RQVAEConfig, TrainingConfig
from .checkpoint import load_model, save_model
from .ids import code_string, disambiguate
from .kmeans import kmeans
from .metrics import intrinsic_metrics
from .rqvae import RQVAE, exact_float32
from .spread import embedding_units, spread_last_level
from .sampling import HierarchicalBatchSampler, RandomBatchSampler
from .losses import pair_relations
from .training import TrainResult, train_rqvae

__all__ = [
    "AssignmentConfig",
    "LossConfig",
    "ModelConfig",
    "RQVAE",
    "Encoded",
    "HierarchicalBatchSampler",
    "RQVAEConfig",
    "RandomBatchSampler",
    "TrainResult",
    "TrainingConfig",
    "code_string",
    "disambiguate",
    "embedding_units",
    "encode",
    "exact_float32",
    "intrinsic_metrics",
    "kmeans",
    "load_model",
    "pair_relations",
    "residual_kmeans",
    "save_model",
    "spread_last_level",
    "train_rqvae",
]
