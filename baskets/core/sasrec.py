"""SASRec over item ids (Kang & McAuley 2018), pure PyTorch: the item-id baseline the next-item model is
measured against (bench/baskets_retrieval.py). An item never seen in training is unknown to it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

class SASRec(nn.Module):
    """Self-attentive sequential recommendation over item ids (Kang & McAuley 2018), trained here with a
    full softmax over the items seen in training. Id 0 pads; an item never seen in training reads as 1
    (unknown) and is never recommended."""

    def __init__(self, n_items: int, d_model: int = 64, heads: int = 2, layers: int = 2, dropout: float = 0.2,
                 max_items: int = 32):
        super().__init__()
        self.n_items, self.max_items = n_items, max_items
        self.item = nn.Embedding(n_items + 2, d_model, padding_idx=0)
        self.pos = nn.Embedding(max_items, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout, batch_first=True, norm_first=True,
                                           activation="gelu")
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids (right-padded) -> (B, T, d) states; ``scores`` of the next item from them."""
        T = ids.shape[1]
        h = self.item(ids) + self.pos(torch.arange(T, device=ids.device))[None]
        causal = torch.triu(torch.full((T, T), float("-inf"), device=ids.device), 1)
        pads = torch.zeros(ids.shape, device=ids.device).masked_fill(ids == 0, float("-inf"))
        h = self.body(h, mask=causal, src_key_padding_mask=pads)
        return torch.nan_to_num(self.norm(h))

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        logits = h @ self.item.weight.T  # tied embeddings
        logits[..., :2] = float("-inf")  # pad and unknown are never the answer
        return logits


def _right_pad(seqs: Sequence[np.ndarray], T: int) -> torch.Tensor:
    """Each sequence's last T ids from position 0, then 0s (pads after: no query sees only pads)."""
    T = min(T, max(len(s) for s in seqs))
    out = torch.zeros(len(seqs), T, dtype=torch.int64)
    for i, s in enumerate(seqs):
        s = np.asarray(s)[-T:]
        out[i, : len(s)] = torch.as_tensor(s)
    return out


@dataclass
class SASRecModel:
    net: SASRec
    index: np.ndarray  # (N,) product row -> id (2 + rank among trained items), 1 = unknown
    products: np.ndarray  # id - 2 -> product row
    seconds: float = 0.0


def train_sasrec(baskets: Sequence[np.ndarray], n_products: int, *, epochs: int = 10, batch_size: int = 256,
                 lr: float = 1e-3, seed: int = 0, device: str = "cpu", max_items: int = 32, d_model: int = 64,
                 max_seconds: float | None = None) -> SASRecModel:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    seen = np.unique(np.concatenate([np.asarray(b) for b in baskets]))
    index = np.ones(n_products, dtype=np.int64)
    index[seen] = np.arange(len(seen)) + 2
    seqs = [index[np.asarray(b)] for b in baskets if len(b) >= 2]
    net = SASRec(len(seen), d_model=d_model, max_items=max_items).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    started = time.time()
    for _ in range(epochs):
        net.train()
        seqs = [seqs[i] for i in rng.permutation(len(seqs))]
        for lo in range(0, len(seqs), batch_size):
            ids = _right_pad(seqs[lo: lo + batch_size], max_items + 1).to(device)
            inp, target = ids[:, :-1], ids[:, 1:]
            real = (inp != 0) & (target != 0)
            loss = F.cross_entropy(net.scores(net(inp)[real]), target[real])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if max_seconds is not None and time.time() - started > max_seconds:
                break
        if max_seconds is not None and time.time() - started > max_seconds:
            break
    net.eval()
    return SASRecModel(net, index, seen, time.time() - started)


@torch.no_grad()
def sasrec_recommend(model: SASRecModel, histories: Sequence[np.ndarray], k: int = 10, *, device: str = "cpu",
                     batch_size: int = 512) -> np.ndarray:
    out = np.full((len(histories), k), -1, dtype=np.int64)
    for lo in range(0, len(histories), batch_size):
        chunk = histories[lo: lo + batch_size]
        ids = _right_pad([model.index[np.asarray(h)] for h in chunk], model.net.max_items).to(device)
        last = (ids != 0).sum(1) - 1
        scores = model.net.scores(model.net(ids)[torch.arange(len(chunk)), last]).float()
        hist = ids.clone()
        scores.scatter_(1, hist, float("-inf"))  # not what is already in the basket (pads/unknown already out)
        top = torch.topk(scores, k, dim=1).indices.cpu().numpy()
        out[lo: lo + len(chunk)] = model.products[top - 2]
    return out
