"""RQ-VAE: encoder MLP -> latent -> L residual codebooks -> decoder MLP (TIGER-style).

The modules only: how codes are chosen for a catalog beyond the forward pass is in `assignment`
(`encode`), saving and loading weights in `checkpoint`. No torch global state is touched at import
time.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import RQVAEConfig
from .kmeans import kmeans, squared_distances


@contextlib.contextmanager
def exact_float32():
    """Turn TF32 off for matmul and cuDNN inside the block, restore the caller's settings after.

    Codes are argmins over distances: TF32 rounding flips near-ties and breaks
    train -> save -> load -> re-encode identity on Ampere+ GPUs.
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32 = False
    cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # (B, d) straight-through sum of chosen codewords
    codes: torch.Tensor  # (B, L) int64
    residuals: list[torch.Tensor]  # L x (B, d): input of each level
    distances: list[torch.Tensor]  # L x (B, K_l): squared distances to each codeword
    codebook_loss: torch.Tensor  # sum over levels of ||e - sg(r)||^2
    commitment_loss: torch.Tensor  # sum over levels of ||sg(e) - r||^2 (unweighted)

    def head(self, rows: int) -> "QuantizerOutput":
        """The first `rows` products of the batch (losses are kept as they are)."""
        return QuantizerOutput(
            quantized=self.quantized[:rows],
            codes=self.codes[:rows],
            residuals=[r[:rows] for r in self.residuals],
            distances=[d[:rows] for d in self.distances],
            codebook_loss=self.codebook_loss,
            commitment_loss=self.commitment_loss,
        )


class ResidualQuantizer(nn.Module):
    def __init__(self, dim: int, codebook_sizes: tuple[int, ...]):
        super().__init__()
        self.codebook_sizes = tuple(codebook_sizes)
        self.codebooks = nn.ParameterList(
            [nn.Parameter(torch.randn(k, dim) * 0.01) for k in codebook_sizes]
        )
        # Steps since each codeword was last chosen; drives dead-code re-seeding.
        for level, k in enumerate(codebook_sizes):
            self.register_buffer(f"idle_steps_{level}", torch.zeros(k, dtype=torch.long))
        self.register_buffer("initialized", torch.tensor(False))

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)

    def idle_steps(self, level: int) -> torch.Tensor:
        return getattr(self, f"idle_steps_{level}")

    def forward(self, z: torch.Tensor, first_codes: torch.Tensor | None = None) -> QuantizerOutput:
        """first_codes: (B,) level-1 codes to use instead of the nearest where >= 0."""
        residual = z
        quantized = torch.zeros_like(z)
        codes, residuals, distances = [], [], []
        codebook_loss = z.new_zeros(())
        commitment_loss = z.new_zeros(())
        for level, codebook in enumerate(self.codebooks):
            dist = squared_distances(residual, codebook)  # (B, K)
            idx = dist.argmin(1)  # (B,)
            if level == 0 and first_codes is not None:
                idx = torch.where(first_codes >= 0, first_codes, idx)
            e = codebook[idx]  # (B, d)
            codebook_loss = codebook_loss + (e - residual.detach()).pow(2).sum(1).mean()
            commitment_loss = commitment_loss + (residual - e.detach()).pow(2).sum(1).mean()
            residuals.append(residual)
            distances.append(dist)
            codes.append(idx)
            quantized = quantized + e
            residual = residual - e.detach()
        # Straight-through: the decoder sees codewords, the encoder gets the decoder's gradient.
        quantized_st = z + (quantized - z).detach()
        return QuantizerOutput(
            quantized=quantized_st,
            codes=torch.stack(codes, 1),
            residuals=residuals,
            distances=distances,
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
        )

    @torch.no_grad()
    def init_from_kmeans(self, z: torch.Tensor, *, iters: int, generator: torch.Generator) -> None:
        """k-means each codebook on the real residuals left by the levels above it."""
        residual = z
        for codebook in self.codebooks:
            centroids = kmeans(residual, codebook.shape[0], iters=iters, generator=generator)
            codebook.data.copy_(centroids)
            idx = squared_distances(residual, codebook).argmin(1)
            residual = residual - codebook[idx]
        self.initialized.fill_(True)

    @torch.no_grad()
    def reseed_dead_codes(
        self,
        out: QuantizerOutput,
        *,
        threshold: int,
        generator: torch.Generator | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> torch.Tensor:
        """Count a step for every codeword (`count_idle_steps`), then re-seed those idle for
        `threshold` steps (`reseed_idle_codes`). (L,) how many per level."""
        self.count_idle_steps(out.codes)
        return self.reseed_idle_codes(out, threshold=threshold, generator=generator, optimizer=optimizer)

    @torch.no_grad()
    def count_idle_steps(self, codes: torch.Tensor) -> None:
        """One more idle step for every codeword, 0 for those that `codes` (B, L) chose."""
        for level in range(self.levels):
            idle = self.idle_steps(level)
            idle += 1
            idle.index_fill_(0, codes[:, level], 0)

    @torch.no_grad()
    def reseed_idle_codes(
        self,
        out: QuantizerOutput,
        *,
        threshold: int,
        generator: torch.Generator | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> torch.Tensor:
        """Replace the codewords idle for `threshold` steps by residuals of the current batch (Adam
        moments of the replaced rows are zeroed). (L,) how many per level, on the device.

        Like k-means++: residuals that their codeword serves worst are the likeliest seeds, so a
        re-seeded codeword takes over a region that needs it and survives. Fixed shapes and no host
        read (it runs inside the training step's CUDA graph): every codeword draws a seed, the idle
        ones take theirs. `generator` is on the codebooks' device (None: that device's default)."""
        counts = []
        for level, codebook in enumerate(self.codebooks):
            idle = self.idle_steps(level)
            dead = idle >= threshold  # (K,)
            residual = out.residuals[level].detach()  # (B, d)
            error = out.distances[level].detach().gather(1, out.codes[:, level : level + 1]).squeeze(1)  # (B,)
            weights = error.double().clamp_min(0)
            weights = torch.where(weights.sum() > 0, weights, 1.0)  # every residual on its codeword: uniform
            pick = torch.multinomial(weights, len(dead), replacement=True, generator=generator)  # (K,)
            codebook.data.copy_(torch.where(dead[:, None], residual[pick], codebook.data))
            idle.masked_fill_(dead, 0)
            if optimizer is not None:
                state = optimizer.state.get(codebook, {})
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in state:
                        state[key].masked_fill_(dead[:, None], 0.0)
            counts.append(dead.sum())
        return torch.stack(counts)


class RQVAE(nn.Module):
    def __init__(self, config: RQVAEConfig):
        """Built from `config.model`; the whole recipe stays with it (`assignment.encode` reads
        `config.assignment`, `checkpoint.save_model` saves it)."""
        super().__init__()
        self.config = config
        m = config.model
        self.encoder = _mlp([m.input_dim, *m.hidden_dims, m.latent_dim])
        self.quantizer = ResidualQuantizer(m.latent_dim, m.codebook_sizes)
        self.decoder = _mlp([m.latent_dim, *reversed(m.hidden_dims), m.input_dim])
        if m.linear_skip:
            self.encoder_skip = nn.Linear(m.input_dim, m.latent_dim)
            self.decoder_skip = nn.Linear(m.latent_dim, m.input_dim)
            # The MLP branches start at zero: at init the model is the linear (PCA) map.
            for mlp in (self.encoder, self.decoder):
                nn.init.zeros_(mlp[-1].weight)
                nn.init.zeros_(mlp[-1].bias)
        # Mean of the training inputs (centres the similarity-preservation targets).
        self.register_buffer("input_mean", torch.zeros(m.input_dim))

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)  # (B, latent_dim)
        if self.config.model.linear_skip:
            z = z + self.encoder_skip(x)
        return F.normalize(z, dim=1) if self.config.model.normalize_latent else z

    def decode(self, q: torch.Tensor) -> torch.Tensor:
        out = self.decoder(q)
        if self.config.model.linear_skip:
            out = out + self.decoder_skip(q)
        return out

    def forward(self, x: torch.Tensor, first_codes: torch.Tensor | None = None) -> tuple[torch.Tensor, QuantizerOutput]:
        z = self.latent(x)
        q = self.quantizer(z, first_codes)
        return self.decode(q.quantized), q  # (B, input_dim), quantizer output

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Set the input mean; with `linear_skip`, the encoder skip to the top principal
        directions of `x` and the decoder skip to the least-squares inverse of the latent."""
        mean = x.mean(0)
        self.input_mean.copy_(mean)
        if not self.config.model.linear_skip:
            return
        d = self.config.model.latent_dim
        xc = (x - mean).double()
        # Top-d right singular vectors = principal directions (d <= input_dim).
        _, _, vh = torch.linalg.svd(xc, full_matrices=False)
        comps = torch.zeros(d, x.shape[1], dtype=x.dtype, device=x.device)  # (d, D)
        r = min(d, len(vh))  # fewer samples than latent dims: the rest stay zero
        comps[:r] = vh[:r].to(x.dtype)
        self.encoder_skip.weight.copy_(comps)
        self.encoder_skip.bias.copy_(-(comps @ mean))
        z = self.latent(x)  # MLP branch is zero at init
        z1 = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype, device=z.device)], 1).double()
        sol = torch.linalg.lstsq(z1.cpu(), x.double().cpu()).solution.to(x.device)  # (d+1, D)
        self.decoder_skip.weight.copy_(sol[:d].t().to(x.dtype))
        self.decoder_skip.bias.copy_(sol[d].to(x.dtype))
