#!/bin/bash
# usage: FLAVORS="precision discovery" bench/gpu/semantic_ids.sh DATASET...  one process per (dataset, flavor, method, seed), merged at the end
source "$(dirname "$0")/env.sh"
mkdir -p /tmp/runs
for d in "$@"; do for f in ${FLAVORS:-precision discovery}; do
  python3 bench/semantic_ids.py --datasets $d --flavors $f --methods rkmeans --seeds 0 --device cuda > /tmp/runs/embed-$d-$f.log 2>&1   # embeds once (cache)
done; done
for d in "$@"; do for f in ${FLAVORS:-precision discovery}; do for m in rqvae rqvae_l0 rkmeans; do for s in 0 1 2; do
  python3 bench/semantic_ids.py --datasets $d --flavors $f --methods $m --seeds $s --device cuda --json-out /tmp/runs/$d-$f-$m-$s.json > /tmp/runs/$d-$f-$m-$s.log 2>&1 &
done; done; done; done
wait
tail -n 3 /tmp/runs/*.log | grep -B1 -A1 -i "error\|traceback" | head -20
python3 bench/semantic_ids.py --merge /tmp/runs/*.json --device cuda --out $OUT/semantic-ids-$1.md --json-out $OUT/semantic-ids-$1.json
