#!/bin/bash
# usage: bench/gpu/audit.sh DATASET REGIMES   e.g. bench/gpu/audit.sh bigbasket uniform,sibling
# A: default lambda + cleanlab, seeds 0-2; B: lambda=0, seed 0. Each process is cut at 480 s so the
# merge into $OUT always runs (a 570-s call with all 4 BigBasket regimes x 16 processes timed out).
source "$(dirname "$0")/env.sh"
d=$1; mkdir -p /tmp/aud
python3 -c "import sys; sys.path.insert(0,'.'); from bench.common import *; embed_dataset(load_dataset('$d'), 'precision', 'cuda')"
for r in ${2//,/ }; do
  for s in 0 1 2; do
    timeout 480 python3 -m bench.audit --device cuda --datasets $d --regimes $r --seeds $s --quantizers rqvae --out /tmp/aud/a-$r-$s.md --json /tmp/aud/a-$r-$s.json > /tmp/aud/a-$r-$s.log 2>&1 &
  done
  timeout 480 python3 -m bench.audit --device cuda --datasets $d --regimes $r --seeds 0 --quantizers rqvae:0 --no-cleanlab --no-ablation --out /tmp/aud/b-$r-0.md --json /tmp/aud/b-$r-0.json > /tmp/aud/b-$r-0.log 2>&1 &
done
wait
grep -h "rqvae\|cleanlab (C" /tmp/aud/*.log | head -40
python3 -m bench.audit --device cuda --datasets $d --seeds 0,1,2 --quantizers rqvae,rqvae:0 --merge /tmp/aud/*.json --out $OUT/audit-$d.md --json $OUT/audit-$d.json
