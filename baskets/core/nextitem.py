"""Generative next-item retrieval over semantic IDs (TIGER-style), pure PyTorch, no Django.

A basket is a sequence of products in cart order (``add_to_cart_order``); a product is its semantic ID,
L codewords. The model reads the codewords of the products already in the basket as one token sequence

    [BOS, c(1,1) … c(1,L), c(2,1) … c(2,L), …]

(a decoder-only transformer, causal attention) and predicts every next token: the next product's first
codeword after the previous product's last, its second after its first, and so on. Recommending is a beam
search over the L levels of the next product's ID, constrained by a prefix trie of the codes that exist:
a beam only ever extends a prefix with a codeword that some product has there, so every decoded ID is a
product's (``PrefixTrie``; ``tests/baskets/test_nextitem.py`` checks it). A product never seen in a
training basket still has an ID (its codes come from its text), so the model can name it: the cold start
that an item-id model (``baskets.core.sasrec.SASRec``) cannot answer.

Baselines measured beside it (bench/baskets_retrieval.py): SASRec over item ids (``baskets.core.sasrec``), and in
numpy/scipy popularity, item-to-item co-occurrence and the content nearest neighbours of the last item.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FORMAT_VERSION = 1
EpochHook = Callable[[int, int, dict], None]  # (epoch, epochs, the epoch's history row: loss, seconds)


@dataclass
class NextItemConfig:
    d_model: int = 128
    heads: int = 4
    layers: int = 2
    dropout: float = 0.1
    max_items: int = 32  # products of a basket read (the last ones before the one predicted)
    epochs: int = 10
    batch_size: int = 256  # baskets a step
    lr: float = 2e-3
    weight_decay: float = 0.01
    seed: int = 0
    beam: int = 40  # beams at every level (>= what is asked for plus the basket's own products)
    levels: int = 4  # set from the codes
    codebook_size: int = 256  # set from the codes (largest codeword + 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NextItemConfig":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


# --------------------------------------------------------------------------- the prefix trie


class PrefixTrie:
    """The semantic IDs that exist, as one table per level: ``child[l][node, code]`` is the node reached
    by extending prefix ``node`` (of length l) with ``code`` at level l, -1 where no product has that
    prefix. Nodes of the last level are the distinct full codes; ``products[leaf]`` lists the products
    holding that code (several when codes collide)."""

    def __init__(self, codes: np.ndarray, codebook_size: int | None = None):
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or len(codes) == 0:
            raise ValueError("codes must be a non-empty (N, L) array")
        self.levels = codes.shape[1]
        self.codebook_size = int(codebook_size or codes.max() + 1)
        if codes.min() < 0 or codes.max() >= self.codebook_size:
            raise ValueError("codes out of the codebook")
        self.child: list[torch.Tensor] = []
        parent = np.zeros(len(codes), dtype=np.int64)  # every product starts at the root (node 0)
        n_parent = 1
        for level in range(self.levels):
            _, node = np.unique(codes[:, : level + 1], axis=0, return_inverse=True)
            node = node.reshape(-1)
            table = torch.full((n_parent, self.codebook_size), -1, dtype=torch.int64)
            table[torch.from_numpy(parent), torch.from_numpy(codes[:, level])] = torch.from_numpy(node)
            self.child.append(table)
            parent, n_parent = node, int(node.max()) + 1
        self.leaf_of_product = parent  # (N,) full-code node of each product
        order = np.argsort(parent, kind="stable")
        bounds = np.searchsorted(parent[order], np.arange(n_parent + 1))
        self.products = [order[bounds[i]: bounds[i + 1]] for i in range(n_parent)]
        self.codes = codes

    def allowed(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """(B,) prefix nodes of length ``level`` -> (B, K) bool: codewords that extend them."""
        return self.child[level][nodes] >= 0

    def to(self, device) -> "PrefixTrie":
        self.child = [t.to(device) for t in self.child]
        return self

    def contains(self, code: Sequence[int]) -> bool:
        node = 0
        for level, c in enumerate(code):
            if not 0 <= c < self.codebook_size:
                return False
            node = int(self.child[level][node, c])
            if node < 0:
                return False
        return True


# --------------------------------------------------------------------------- the generative model


class NextItemTransformer(nn.Module):
    """Decoder-only transformer over codeword tokens. Token of codeword c at level l: l * K + c; then BOS
    and PAD. Each position also gets its level and the index of its product in the basket."""

    def __init__(self, config: NextItemConfig):
        super().__init__()
        self.config = config
        L, K, d = config.levels, config.codebook_size, config.d_model
        self.bos, self.pad = L * K, L * K + 1
        self.token = nn.Embedding(L * K + 2, d)
        self.level = nn.Embedding(L + 1, d)  # L: BOS
        self.item = nn.Embedding(config.max_items + 1, d)
        layer = nn.TransformerEncoderLayer(d, config.heads, 4 * d, config.dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.body = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, L * K)

    def tokens(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, I, L) codes (-1 = no product) -> (B, 1 + I*L) tokens with BOS first."""
        B, I, L = codes.shape
        K = self.config.codebook_size
        tok = codes + torch.arange(L, device=codes.device) * K
        tok = torch.where(codes >= 0, tok, torch.full_like(tok, self.pad)).reshape(B, I * L)
        return torch.cat([torch.full((B, 1), self.bos, dtype=tok.dtype, device=tok.device), tok], 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) tokens -> (B, T, K) logits of the next token, each position over its target's level."""
        B, T = tokens.shape
        L, K = self.config.levels, self.config.codebook_size
        pos = torch.arange(T, device=tokens.device)
        level = torch.where(pos == 0, L, (pos - 1) % L)
        item = torch.where(pos == 0, 0, (pos - 1) // L + 1).clamp(max=self.config.max_items)
        h = self.token(tokens) + self.level(level)[None] + self.item(item)[None]
        causal = torch.triu(torch.full((T, T), float("-inf"), device=tokens.device), 1)
        pads = torch.zeros(B, T, device=tokens.device).masked_fill(tokens == self.pad, float("-inf"))
        h = self.norm(self.body(h, mask=causal, src_key_padding_mask=pads))
        weight, bias = self.head.weight.view(L, K, -1), self.head.bias.view(L, K)
        out = h.new_empty(B, T, K)
        for lv in range(L):  # position p predicts token p + 1, of level p % L: that level's codewords only
            at = pos[pos % L == lv]
            out[:, at] = h[:, at] @ weight[lv].T + bias[lv]
        return out


def basket_batch(baskets: Sequence[np.ndarray], codes: torch.Tensor, max_items: int) -> torch.Tensor:
    """Baskets (product rows) -> (B, I, L) codes, -1 padded, each cut to its last ``max_items``."""
    I = min(max_items, max(len(b) for b in baskets))
    out = torch.full((len(baskets), I, codes.shape[1]), -1, dtype=torch.int64)
    for i, b in enumerate(baskets):
        b = b[-I:]
        out[i, : len(b)] = codes[torch.as_tensor(b, dtype=torch.int64)]
    return out


@dataclass
class NextItemModel:
    net: NextItemTransformer
    config: NextItemConfig
    trie: PrefixTrie
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def train_next_item(baskets: Sequence[np.ndarray], codes: np.ndarray, config: NextItemConfig | None = None, *,
                    device: str = "cpu", on_epoch: EpochHook | None = None,
                    max_seconds: float | None = None) -> NextItemModel:
    """Train on ``baskets`` (each an array of product rows in cart order; rows index ``codes`` (N, L))."""
    config = NextItemConfig.from_dict((config or NextItemConfig()).to_dict())
    codes = np.asarray(codes, dtype=np.int64)
    config.levels = codes.shape[1]
    config.codebook_size = max(config.codebook_size, int(codes.max()) + 1)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = NextItemTransformer(config).to(device)
    trie = PrefixTrie(codes, config.codebook_size)
    codes_t = torch.from_numpy(codes)
    usable = [np.asarray(b) for b in baskets if len(b) >= 1]
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = max(1, config.epochs * math.ceil(len(usable) / config.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=steps, pct_start=0.1)
    started, history, step = time.time(), [], 0
    for epoch in range(config.epochs):
        net.train()
        order = rng.permutation(len(usable))
        total, count = 0.0, 0
        for lo in range(0, len(order), config.batch_size):
            batch = [usable[i] for i in order[lo: lo + config.batch_size]]
            tokens = net.tokens(basket_batch(batch, codes_t, config.max_items)).to(device)
            logits = net(tokens[:, :-1])
            target = tokens[:, 1:]
            real = target != net.pad
            K = config.codebook_size
            loss = F.cross_entropy(logits[real], (target[real] % K))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            if step < steps:
                sched.step()
            step += 1
            total, count = total + float(loss.detach()) * len(batch), count + len(batch)
            if max_seconds is not None and time.time() - started > max_seconds:
                break
        history.append({"epoch": epoch + 1, "loss": total / max(count, 1), "seconds": time.time() - started})
        if on_epoch:
            on_epoch(epoch + 1, config.epochs, history[-1])
        if max_seconds is not None and time.time() - started > max_seconds:
            break
    net.eval()
    return NextItemModel(net, config, trie, history, time.time() - started)


@torch.no_grad()
def beam_search(model: NextItemModel, histories: Sequence[np.ndarray], *, beam: int | None = None,
                device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """For each history (product rows in cart order, at least one), the ``beam`` best next full codes
    under the trie: (B, beam) leaf nodes of the trie (-1 when fewer exist) and their log-probabilities."""
    net, trie, cfg = model.net, model.trie, model.config
    beam = beam or cfg.beam
    L, K = cfg.levels, cfg.codebook_size
    keep = cfg.max_items - 1  # room for the product decoded
    trie.to(device)
    ctx = net.tokens(basket_batch([np.asarray(h)[-keep:] for h in histories], torch.from_numpy(trie.codes),
                                  cfg.max_items)).to(device)
    B, T = ctx.shape
    real = (ctx != net.pad).sum(1)  # BOS and the products' tokens, then pads
    ctx = torch.gather(ctx, 1, (torch.arange(T, device=device)[None] - (T - real)[:, None]) % T)  # pads first
    scores = torch.zeros(B, 1, device=device)
    nodes = torch.zeros(B, 1, dtype=torch.int64, device=device)
    seqs = ctx[:, None, :]  # (B, beams, T)
    for level in range(L):
        nb = seqs.shape[1]
        flat = seqs.reshape(B * nb, -1)
        logits = _last_logits(net, flat, real.repeat_interleave(nb) + level)  # (B*nb, K)
        logp = F.log_softmax(logits.float(), -1).view(B, nb, K)
        ok = trie.allowed(level, nodes.reshape(-1)).view(B, nb, K)
        cand = torch.where(ok, scores[:, :, None] + logp, torch.full_like(logp, float("-inf")))
        top = torch.topk(cand.view(B, nb * K), min(beam, nb * K), dim=1)
        src, code = top.indices // K, top.indices % K
        scores = top.values
        parent = torch.gather(nodes, 1, src)
        nodes = trie.child[level][parent, code]
        tok = code + level * K
        seqs = torch.cat([torch.gather(seqs, 1, src[:, :, None].expand(-1, -1, seqs.shape[2])), tok[:, :, None]], 2)
        # beams past the codes that exist (scores -inf) park at the root, and are dropped at the end
        nodes = torch.where(torch.isfinite(scores), nodes, torch.full_like(nodes, -1 if level == L - 1 else 0))
    return nodes.cpu().numpy(), scores.cpu().numpy()


def _last_logits(net: NextItemTransformer, rows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Logits at each row's last real token. Rows are left-padded (pads, then BOS …): the pads are
    dropped by running rows of one length together, so positions count from BOS."""
    T = rows.shape[1]
    out = torch.empty(rows.shape[0], net.config.codebook_size, device=rows.device)
    for n in torch.unique(lengths).tolist():
        pick = torch.nonzero(lengths == n).flatten()
        seq = rows[pick, T - n:]
        out[pick] = net(seq)[:, -1]
    return out


def _products_by(key, cold: np.ndarray) -> dict:
    """{key(p): the products p of ``cold`` (bool mask) with that key, in row order}."""
    out: dict = {}
    for p in np.flatnonzero(cold):
        out.setdefault(key(p), []).append(int(p))
    return out


def cold_index(trie: PrefixTrie, cold: np.ndarray, depth: int | None = None) -> dict:
    """{prefix of the first ``depth`` codewords (L-1 by default): the products of ``cold`` (bool mask) under it}:
    for ``recommend``'s cold slots."""
    depth = trie.codes.shape[1] - 1 if depth is None else depth
    return _products_by(lambda p: tuple(trie.codes[p, :depth].tolist()), cold)


def cold_group_index(groups: np.ndarray, cold: np.ndarray) -> dict:
    """{group (``groups``: (N,) ints, e.g. the category leaf): the products of ``cold`` (bool mask) in it}: for
    ``recommend``'s cold slots by the history's last product's group."""
    return _products_by(lambda p: int(groups[p]), cold)


def recommend(model: NextItemModel, histories: Sequence[np.ndarray], k: int = 10, *, device: str = "cpu",
              popularity: np.ndarray | None = None, exclude_history: bool = True, cold: dict | None = None,
              cold_slots: int = 0, cold_vectors: np.ndarray | None = None,
              cold_groups: np.ndarray | None = None) -> np.ndarray:
    """(B, k) product rows, best first (-1 when fewer): the decoded codes' products, leaving out the
    products already in the history; products sharing one code in ``popularity`` order.

    Cold slots (TIGER's cold-start rule): with ``cold`` (``cold_index``) the last ``cold_slots`` places
    go to products never seen in training under the decoded prefixes (of the index's depth), in beam order (the
    model has never seen their last codeword as a target, so the beam alone seldom reaches them); with
    ``cold_vectors`` ((N, d) unit rows, the products' text) every such product under the decoded prefixes
    ranked by cosine to the history's last product instead (the model says where, the text which). With
    ``cold_groups`` ((N,) ints, the products' category leaf) ``cold`` is a ``cold_group_index`` and the cold places
    go to the never-seen products of the history's last product's group, not the decoded prefixes' (the aisle
    says where, the text which: the model fills the other places). Places left empty are the beam's."""
    leaves, _ = beam_search(model, histories, device=device)
    out = np.full((len(histories), k), -1, dtype=np.int64)
    depth = len(next(iter(cold))) if cold and cold_groups is None else 0  # the index's prefix length
    for i, (row, hist) in enumerate(zip(leaves, histories)):
        seen = set(np.asarray(hist).tolist()) if exclude_history else set()
        cold_got: list = []
        if cold and cold_slots:
            last = int(np.asarray(hist)[-1]) if len(hist) else None
            if cold_groups is not None:  # the history's last product's group
                under = list(cold.get(int(cold_groups[last]), ())) if last is not None else []
            else:  # under the decoded prefixes, in beam order
                prefixes = dict.fromkeys(tuple(model.trie.codes[model.trie.products[leaf][0], :depth].tolist())
                                         for leaf in row[row >= 0])
                under = [p for prefix in prefixes for p in cold.get(prefix, ())]
            under = [p for p in under if p not in seen]
            if cold_vectors is not None and len(under) > 1 and last is not None:
                sims = cold_vectors[under] @ cold_vectors[last]
                under = [under[j] for j in np.argsort(-sims, kind="stable")]
            cold_got = under[:cold_slots]
            seen.update(cold_got)
        got = []
        for leaf in row:
            if leaf < 0:
                continue
            items = model.trie.products[leaf]
            if popularity is not None and len(items) > 1:
                items = items[np.argsort(-popularity[items], kind="stable")]
            for p in items:
                if p not in seen and len(got) < k - len(cold_got):
                    got.append(p)
                    seen.add(p)
            if len(got) >= k - len(cold_got):
                break
        got += cold_got
        out[i, : len(got)] = got
    return out


def save_next_item(model: NextItemModel) -> bytes:
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.net.state_dict().items()}
    torch.save({"format": FORMAT_VERSION, "config": model.config.to_dict(), "state_dict": state}, buf)
    return buf.getvalue()


def load_next_item(blob: bytes, codes: np.ndarray, *, device: str = "cpu") -> NextItemModel:
    """The model saved by ``save_next_item``, with the trie of ``codes`` (the products it may name now)."""
    payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT_VERSION:
        raise ValueError(f"unsupported next-item model format {payload.get('format')!r}")
    config = NextItemConfig.from_dict(payload["config"])
    net = NextItemTransformer(config)
    net.load_state_dict(payload["state_dict"])
    net.to(device).eval()
    codes = np.asarray(codes, dtype=np.int64)
    if codes.shape[1] != config.levels or codes.max() >= config.codebook_size:
        raise ValueError("codes do not fit the model (levels or codebook size)")
    return NextItemModel(net, config, PrefixTrie(codes, config.codebook_size))
