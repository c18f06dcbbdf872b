"""A trained RQ-VAE as bytes and back; models saved by earlier versions load with the rules they
were trained and coded with."""

from __future__ import annotations

import io

import torch

from .config import RQVAEConfig
from .rqvae import RQVAE

FORMAT_VERSION = 2
# Config fields added after format 1, with the values that format-1 models were trained with.
_LEGACY_CONFIG = {"linear_skip": False, "normalize_latent": False}


def save_model(model: RQVAE, config: RQVAEConfig | None = None) -> bytes:
    config = config or model.config
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": FORMAT_VERSION, "config": config.to_dict(), "state_dict": state}, buf)
    return buf.getvalue()


def load_model(blob: bytes, *, device="cpu") -> tuple[RQVAE, RQVAEConfig]:
    payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    fmt = payload.get("format")
    if fmt not in (1, FORMAT_VERSION):
        raise ValueError(f"unsupported model format {fmt!r}")
    saved = dict(payload["config"])
    state = dict(payload["state_dict"])
    if fmt == 1:
        for key, value in _LEGACY_CONFIG.items():
            saved.setdefault(key, value)
    # Models saved before these assignment rules keep plain nearest-codeword codes.
    saved.setdefault("spread_last_level", False)
    saved.setdefault("near_duplicate_threshold", 0.0)
    saved.setdefault("near_duplicate_max_group", 0)
    config = RQVAEConfig.from_dict(saved)
    model = RQVAE(config)
    state.setdefault("input_mean", torch.zeros(config.model.input_dim))
    model.load_state_dict(state)
    model.to(device).eval()
    return model, config
