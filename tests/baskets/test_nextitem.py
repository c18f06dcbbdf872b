"""The next-item model (baskets.core.nextitem, no database): constrained decoding never leaves the codes that
exist, the trie, learning on a toy set, saving and loading."""

import numpy as np
import torch

from baskets.core.nextitem import (
    NextItemConfig,
    NextItemModel,
    NextItemTransformer,
    PrefixTrie,
    beam_search,
    cold_group_index,
    cold_index,
    load_next_item,
    recommend,
    save_next_item,
    train_next_item,
)

TINY = {"d_model": 32, "heads": 2, "layers": 1, "dropout": 0.0, "batch_size": 32, "max_items": 8, "beam": 8}


def sparse_codes(n=40, levels=3, size=16, seed=0) -> np.ndarray:
    """n distinct codes among size**levels possible: most prefixes do not exist."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(size**levels, n, replace=False)
    return np.stack([(flat // size**(levels - 1 - lv)) % size for lv in range(levels)], 1)


def untrained(codes, size=16, seed=0) -> NextItemModel:
    torch.manual_seed(seed)
    config = NextItemConfig(**TINY, levels=codes.shape[1], codebook_size=size)
    net = NextItemTransformer(config).eval()
    with torch.no_grad():  # loud random logits: an unconstrained decoder would wander off the codes
        net.head.weight.mul_(50)
    return NextItemModel(net, config, PrefixTrie(codes, size))


def test_constrained_decoding_never_emits_a_code_that_does_not_exist():
    codes = sparse_codes()
    existing = {tuple(c) for c in codes}
    model = untrained(codes)
    rng = np.random.default_rng(1)
    histories = [rng.choice(len(codes), rng.integers(1, 6), replace=False) for _ in range(50)]

    leaves, scores = beam_search(model, histories, beam=8)

    decoded = [tuple(model.trie.codes[model.trie.products[leaf][0]]) for leaf in leaves.ravel() if leaf >= 0]
    assert len(decoded) == 50 * 8  # 40 codes: every beam finds one
    assert all(code in existing for code in decoded)
    assert np.isfinite(scores).all()
    # the constraint is what keeps them there: the same model decoded greedily without it leaves the codes
    tokens = model.net.tokens(torch.from_numpy(codes[[h[0] for h in histories]])[:, None, :])
    free = []
    with torch.no_grad():
        for level in range(codes.shape[1]):
            nxt = model.net(tokens)[:, -1].argmax(-1)
            free.append(nxt)
            tokens = torch.cat([tokens, (nxt + level * model.config.codebook_size)[:, None]], 1)
    unconstrained = {tuple(int(c) for c in row) for row in torch.stack(free, 1)}
    assert unconstrained - existing


def test_fewer_codes_than_beams_and_recommendations_are_products():
    codes = sparse_codes(n=5)
    model = untrained(codes)
    leaves, scores = beam_search(model, [np.array([0, 1])], beam=8)
    assert sorted(leaves[0][leaves[0] >= 0]) == list(range(5)) and (leaves[0] < 0).sum() == 3
    assert np.isinf(scores[0][leaves[0] < 0]).all()
    recs = recommend(model, [np.array([0, 1])], k=4)
    assert set(recs[0][recs[0] >= 0]) == {2, 3, 4}  # the basket's own products are left out


def test_trie_knows_which_prefixes_exist():
    trie = PrefixTrie(np.array([[1, 2, 3], [1, 2, 4], [5, 0, 0], [5, 0, 0]]), 8)
    assert trie.contains([1, 2, 4]) and not trie.contains([1, 3, 4]) and not trie.contains([1, 2, 9])
    assert trie.allowed(0, torch.tensor([0]))[0].nonzero().flatten().tolist() == [1, 5]
    leaf = trie.leaf_of_product[2]
    assert trie.products[leaf].tolist() == [2, 3]  # a shared code lists both products


def test_it_learns_what_follows_what():
    codes = sparse_codes(n=30, seed=2)
    rng = np.random.default_rng(0)
    # each product i is followed by product (i + 1) % 30
    baskets = [(np.arange(3) + s) % 30 for s in rng.integers(0, 30, 900)]
    config = NextItemConfig(**{**TINY, "epochs": 6, "lr": 5e-3})
    model = train_next_item(baskets, codes, config)
    recs = recommend(model, [np.array([i]) for i in range(30)], k=1)
    assert (recs[:, 0] == (np.arange(30) + 1) % 30).mean() >= 0.8
    assert model.history[-1]["loss"] < model.history[0]["loss"]
    again = load_next_item(save_next_item(model), codes)
    assert (recommend(again, [np.array([i]) for i in range(30)], k=1) == recs).all()


def test_cold_slots_hold_never_bought_products_under_the_decoded_prefixes():
    codes = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 2], [1, 1, 0], [1, 1, 1], [2, 2, 0]])
    model = untrained(codes, size=4)
    never_bought = np.array([False, False, True, False, True, True])
    cold = cold_index(model.trie, never_bought)
    assert cold == {(0, 0): [2], (1, 1): [4], (2, 2): [5]}

    leaves, _ = beam_search(model, [np.array([0])])
    slotted = recommend(model, [np.array([0])], k=3, cold=cold, cold_slots=2)

    assert 0 not in slotted[0] and len(set(slotted[0])) == 3
    assert never_bought[slotted[0][1:]].all()  # the last two places: never-bought products
    first = tuple(codes[model.trie.products[leaves[0][0]][0], :2])  # the prefix of the beam's best code
    assert slotted[0][1] == cold[first][0]


def test_cold_slots_by_text_take_the_products_under_the_prefixes_nearest_the_last_product():
    codes = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 0, 1]])
    model = untrained(codes, size=4)
    never_bought = np.array([False, True, True, True, False, True])
    cold = cold_index(model.trie, never_bought, depth=1)
    assert cold == {(0,): [1, 2, 3], (1,): [5]}
    angles = np.array([0.0, 1.5, 0.2, 0.9, 3.0, 0.1])  # product 5 nearest product 0, then 2, then 3
    vectors = np.stack([np.cos(angles), np.sin(angles)], 1)

    leaves, _ = beam_search(model, [np.array([0])])
    decoded = {tuple(codes[model.trie.products[leaf][0], :1]) for leaf in leaves[0][leaves[0] >= 0]}
    by_text = recommend(model, [np.array([0])], k=3, cold=cold, cold_slots=2, cold_vectors=vectors)[0]

    under = [p for prefix in decoded for p in cold.get(prefix, ())]
    assert list(by_text[1:]) == sorted(under, key=lambda p: abs(angles[p]))[:2]
    assert decoded == {(0,), (1,)} and list(by_text[1:]) == [5, 2]


def test_cold_slots_by_aisle_take_the_last_products_aisle_nearest_it_whatever_the_model_decodes():
    codes = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 0, 1], [1, 1, 0]])
    model = untrained(codes, size=4)
    never_bought = np.array([False, True, True, False, True, True])
    aisle = np.array([7, 7, 3, 3, 3, 7])
    cold = cold_group_index(aisle, never_bought)
    assert cold == {7: [1, 5], 3: [2, 4]}
    angles = np.array([0.0, 1.5, 0.2, 0.9, 3.0, 0.1])  # nearest product 0: 5, then 2, then 3, then 1
    vectors = np.stack([np.cos(angles), np.sin(angles)], 1)

    recs = recommend(model, [np.array([0]), np.array([0, 3])], k=3, cold=cold, cold_slots=2, cold_vectors=vectors,
                     cold_groups=aisle)

    assert list(recs[0][1:]) == [5, 1]  # product 0's aisle 7, by text to it
    assert list(recs[1][1:]) == [2, 4]  # product 3's aisle 3 (the basket's last), by text to product 3
    assert recs[0][0] not in (0, 5, 1) and recs[1][0] not in (0, 3, 2, 4)  # the first place: the model's, none twice
