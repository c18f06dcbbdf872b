"""RQ-VAE: encoder MLP -> latent -> L residual codebooks -> decoder MLP (TIGER-style).

Arrays in, arrays out at the boundary (`encode`, `save_model`, `load_model`); everything
else is a plain `nn.Module`. No torch global state is touched at import time.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import RQVAEConfig
from .kmeans import kmeans, squared_distances
from .neighbours import group_nearest_codes, keep_codewords_used, near_duplicate_groups
from .spread import embedding_units, spread_last_level

FORMAT_VERSION = 2
# Config fields added after format 1, with the values that format-1 models were trained with.
_LEGACY_CONFIG = {"linear_skip": False, "normalize_latent": False}


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
        super().__init__()
        self.config = config
        self.encoder = _mlp([config.input_dim, *config.hidden_dims, config.latent_dim])
        self.quantizer = ResidualQuantizer(config.latent_dim, config.codebook_sizes)
        self.decoder = _mlp([config.latent_dim, *reversed(config.hidden_dims), config.input_dim])
        if config.linear_skip:
            self.encoder_skip = nn.Linear(config.input_dim, config.latent_dim)
            self.decoder_skip = nn.Linear(config.latent_dim, config.input_dim)
            # The MLP branches start at zero: at init the model is the linear (PCA) map.
            for mlp in (self.encoder, self.decoder):
                nn.init.zeros_(mlp[-1].weight)
                nn.init.zeros_(mlp[-1].bias)
        # Mean of the training inputs (centres the similarity-preservation targets).
        self.register_buffer("input_mean", torch.zeros(config.input_dim))

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)  # (B, latent_dim)
        if self.config.linear_skip:
            z = z + self.encoder_skip(x)
        return F.normalize(z, dim=1) if self.config.normalize_latent else z

    def decode(self, q: torch.Tensor) -> torch.Tensor:
        out = self.decoder(q)
        if self.config.linear_skip:
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
        if not self.config.linear_skip:
            return
        d = self.config.latent_dim
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


@dataclass
class Encoded:
    codes: np.ndarray  # (N, L) int64, last level spread off collisions when the config says so
    nearest_codes: np.ndarray  # (N, L) int64: before the last level is spread (nearest codeword there)
    reconstruction_error: np.ndarray  # (N,) float32: 1 - cosine(reconstruction, embedding)
    gaps: np.ndarray  # (N, L) float32: 2nd-nearest minus nearest codeword distance (low = unsure)


def encode(
    model: RQVAE,
    embeddings: np.ndarray,
    *,
    device="cpu",
    batch_size: int = 4096,
    occupied: Iterable[tuple[int, ...]] | Callable[[np.ndarray], Iterable[tuple[int, ...]]] = (),
    first_code_hints: np.ndarray | None = None,
) -> Encoded:
    """Codes, reconstruction error and per-level gaps of every row.

    With `config.near_duplicate_threshold` the rows' near-duplicate groups (`near_duplicate_groups`)
    each take one level-1 code: the majority of `first_code_hints` (N,) of its rows where any is >= 0
    (level-1 codes of near-duplicates coded earlier, for new products), else the codeword nearest the
    group's mean latent, unless that leaves a codeword some row is nearest to with no rows: then a
    group nearest to it takes it (`neighbours.keep_codewords_used`). Levels below follow from that
    code's residual.

    With `config.spread_last_level` the last level is assigned per prefix, off collisions, among all
    rows encoded together and `occupied` (full codes already held by other products, or a function
    from the rows' (N, L-1) prefixes to those codes; see `spread.spread_last_level`): the codes of a
    row can depend on the rows encoded with it.
    """
    x_all = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x_all.ndim != 2 or x_all.shape[1] != model.config.input_dim:
        raise ValueError(
            f"embeddings must be (N, {model.config.input_dim}), got {tuple(x_all.shape)}"
        )
    levels = model.config.levels
    codes = np.zeros((len(x_all), levels), np.int64)
    errors = np.zeros(len(x_all), np.float32)
    gaps = np.zeros((len(x_all), levels), np.float32)
    spread = model.config.spread_last_level and levels > 1
    k = min(model.config.spread_candidates, model.config.codebook_sizes[-1])
    cand = np.zeros((len(x_all), k if spread else 0), np.int64)
    cand_dist = np.zeros(cand.shape, np.float32)
    own_first = np.zeros(len(x_all), np.int64)  # each row's own nearest level-1 codeword
    was_training = model.training
    model.to(device).eval()

    def run(rows: np.ndarray, first: np.ndarray | None):
        for start in range(0, len(rows), batch_size):
            sl = rows[start : start + batch_size]
            x = torch.from_numpy(x_all[sl]).to(device)
            forced = None if first is None else torch.from_numpy(first[sl]).to(device)
            recon, q = model(x, forced)
            codes[sl] = q.codes.cpu().numpy()
            own_first[sl] = q.distances[0].argmin(1).cpu().numpy()
            errors[sl] = (1.0 - F.cosine_similarity(recon, x, dim=1)).cpu().numpy()
            for level, dist in enumerate(q.distances):
                # Euclidean (not squared) distances, so gaps are in latent units.
                two = dist.topk(2, dim=1, largest=False).values.clamp_min(0).sqrt()  # (B, 2)
                gaps[sl, level] = (two[:, 1] - two[:, 0]).cpu().numpy()
            if spread:
                top = q.distances[-1].topk(k, dim=1, largest=False)
                cand[sl], cand_dist[sl] = top.indices.cpu().numpy(), top.values.cpu().numpy()

    try:
        with exact_float32(), torch.no_grad():
            units = embedding_units(x_all) if spread or model.config.near_duplicate_threshold > 0 else None
            grouping = _group_first_codes(model, x_all, first_code_hints, units, device=device, batch_size=batch_size)
            run(np.arange(len(x_all)), None if grouping is None else grouping[0])
            if grouping is not None:  # keep level-1 codewords that only grouped rows were nearest to
                _, groups, fixed = grouping
                kept = keep_codewords_used(own_first, codes[:, 0], groups, fixed=fixed)
                moved = np.flatnonzero(kept != codes[:, 0])
                if len(moved):
                    run(moved, kept)
    finally:
        model.train(was_training)
    nearest = codes
    if spread:
        cand[:, 0] = nearest[:, -1]  # ties in topk: the argmin's choice is the nearest
        if callable(occupied):
            occupied = occupied(np.unique(nearest[:, :-1], axis=0))
        codes = spread_last_level(nearest, cand, cand_dist, units=units, occupied=occupied)
    return Encoded(codes=codes, nearest_codes=nearest, reconstruction_error=errors, gaps=gaps)


def _group_first_codes(model: RQVAE, x_all: np.ndarray, hints: np.ndarray | None, units: np.ndarray | None, *,
                       device, batch_size: int):
    """(first, groups, fixed) or None: (N,) level-1 code per row from its near-duplicate group (-1:
    the row's own nearest), the rows' group ids, and which rows' groups follow `hints`."""
    config = model.config
    if config.near_duplicate_threshold <= 0 or len(x_all) == 0:
        return None
    groups = near_duplicate_groups(x_all, config.near_duplicate_threshold, k=config.near_duplicate_k, device=device,
                                   units=units, max_size=config.near_duplicate_max_group)
    hints = np.full(len(x_all), -1, np.int64) if hints is None else np.asarray(hints, np.int64)
    rows = np.flatnonzero((np.bincount(groups)[groups] > 1) | (hints >= 0))
    first = np.full(len(x_all), -1, np.int64)
    fixed = np.zeros(len(x_all), bool)
    if not len(rows):
        return first, groups, fixed
    z = torch.cat([model.latent(torch.from_numpy(x_all[rows[s : s + batch_size]]).to(device))
                   for s in range(0, len(rows), batch_size)]).cpu().numpy()
    first[rows] = group_nearest_codes(z, groups[rows], model.quantizer.codebooks[0].detach().cpu().numpy())
    for g in np.unique(groups[rows[hints[rows] >= 0]]):  # groups with codes from earlier near-duplicates
        members = rows[groups[rows] == g]
        votes = np.bincount(hints[members][hints[members] >= 0])
        first[members] = int(votes.argmax())  # ties: the lower code
        fixed[members] = True
    return first, groups, fixed


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
    state.setdefault("input_mean", torch.zeros(config.input_dim))
    model.load_state_dict(state)
    model.to(device).eval()
    return model, config
