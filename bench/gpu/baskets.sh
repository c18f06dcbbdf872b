#!/bin/bash
# usage: [BUDGET=540] bench/gpu/baskets.sh [codes|complements|retrieval|all]   (issue 20; default all)
# Needs in .carry/data, beside instacart.csv: instacart_baskets.csv.xz (5.3 MB:
#   xz -9 -T1 -c ../shared/data/instacart_baskets.csv > .carry/data/instacart_baskets.csv.xz).
# codes: embeds instacart's two flavors on the GPU, then one process per (flavor, method, seed): RQ-VAE default lambda,
#   lambda = 0, residual k-means and the RQ-VAE with the co-purchase term (learning from the training 80% of the
#   orders), seeds 0 1 2 (24 side by side), cached under $SEMID_HOME (/tmp/sh); a set already
#   cached on this warm machine is skipped, a job still running when BUDGET seconds are spent is cut (call again).
#   CODE_METHODS="rqvae_cp ..." computes (and `complements` reads) those methods only. WEIGHT=w weighs the co-purchase
#   half w beside the text in every stage (--copurchase-weight; default the application's COPURCHASE_WEIGHT).
# complements: bench/baskets_complements.py over the cached codes -> $OUT/baskets-complements.{md,json};
#   SCORED=test (or validation) names the partners from that tenth of the orders alone; PARTNERS_BY=above-chance
#   names the partners surely above chance with the orders' sizes kept (-> $OUT/baskets-complements-above-chance.*).
# retrieval: bench/baskets_retrieval.py, one process per seed (each trains its SASRec and TIGER on the codes of its
#   seed; CODES=rqvae_cp for the codes with the co-purchase term, default rqvae; HOLD_OUT=0.05 adds the split by
#   product, METHODS="content tiger ..." a subset), merged -> $OUT/baskets-retrieval.{md,json}. Each stage fits one 600 s call: the lead runs
#   `bash bench/gpu/baskets.sh codes`, then `bash bench/gpu/baskets.sh complements`, then `... retrieval`.
source "$(dirname "$0")/env.sh"
STAGE=${1:-all}; DEADLINE=$(( $(date +%s) + ${BUDGET:-540} ))
mkdir -p /tmp/bask $OUT
left() { echo $(( DEADLINE - $(date +%s) )); }
if [ "$STAGE" = codes ] || [ "$STAGE" = all ]; then
  t0=$(date +%s)
  python3 -c "import sys; sys.path.insert(0, 'bench'); import common; ds = common.load_dataset('instacart')
for f in ('precision', 'discovery'): common.embed_dataset(ds, f, device='cuda')
import baskets_data; baskets_data.load_baskets(ds)" > /tmp/bask/embed.log 2>&1
  echo "embedded: $(( $(date +%s) - t0 )) s"
  for f in precision discovery; do for m in ${CODE_METHODS:-rkmeans rqvae rqvae_l0 rqvae_cp}; do for s in 0 1 2; do
    OMP_NUM_THREADS=1 timeout $(left) python3 bench/baskets_data.py --flavor $f --method $m --seed $s --device cuda ${WEIGHT:+--copurchase-weight $WEIGHT} \
      > /tmp/bask/codes-$f-$m-$s.log 2>&1 &
  done; done; done
  wait
  tail -qn 1 /tmp/bask/codes-*.log
  echo "codes: $(( $(date +%s) - t0 )) s"
fi
if [ "$STAGE" = complements ] || [ "$STAGE" = all ]; then
  name=baskets-complements${PARTNERS_BY:+-$PARTNERS_BY}
  OMP_NUM_THREADS=16 timeout $(left) python3 bench/baskets_complements.py --device cuda ${CODE_METHODS:+--methods $CODE_METHODS} ${SCORED:+--scored $SCORED} ${WEIGHT:+--copurchase-weight $WEIGHT} \
    ${PARTNERS_BY:+--partners-by $PARTNERS_BY} --json-out $OUT/$name.json > $OUT/$name.md 2> /tmp/bask/$name.err || tail -5 /tmp/bask/$name.err
  tail -n 25 $OUT/$name.md
fi
if [ "$STAGE" = retrieval ] || [ "$STAGE" = all ]; then
  python3 -c "import sys; sys.path.insert(0, 'bench'); import common; common.embed_dataset(common.load_dataset('instacart'), 'precision', device='cuda')" > /tmp/bask/embed.log 2>&1
  for s in 0 1 2; do
    OMP_NUM_THREADS=4 timeout $(left) python3 bench/baskets_retrieval.py --device cuda --seeds $s --codes ${CODES:-rqvae} ${WEIGHT:+--copurchase-weight $WEIGHT} \
      ${HOLD_OUT:+--hold-out $HOLD_OUT} ${METHODS:+--methods $METHODS} \
      --json-out /tmp/bask/retrieval-$s.json > /tmp/bask/retrieval-$s.log 2>&1 &
  done
  wait
  tail -qn 3 /tmp/bask/retrieval-*.log | grep -i "error\|traceback" ; cp /tmp/bask/retrieval-*.log $OUT/ 2>/dev/null
  python3 bench/baskets_retrieval.py --merge /tmp/bask/retrieval-*.json > $OUT/baskets-retrieval.md
  cp /tmp/bask/retrieval-*.json $OUT/; cat $OUT/baskets-retrieval.md
fi
