#!/bin/bash
# usage: [SCALE_SIDES="before after"] bench/gpu/train_speed.sh BEFORE [N] [CATALOG]   (GPU machine; docs/performance.md)
# Training speed and code quality of two versions of the quantizer core on one GPU. First bench/scale.py
# --stages train,encode on N synthetic products (default 1,000,000; 0 = skip; the default recipe trains on a
# 100,000-product sample), with BEFORE's core, then with this tree's, one at a time (the timing is theirs);
# SCALE_SIDES=after runs only this tree's. Then, with CATALOG (e.g. bigbasket), bench/semantic_ids.py
# --methods rqvae on that real catalog's precision flavour, seeds 0, 1, 2, both cores side by side (six
# processes at once: the quality figures, not the times). BEFORE is an earlier commit unpacked inside the
# carried folder:
#   mkdir -p .carry/before && git archive <commit> quantizer/__init__.py quantizer/core bench | tar -x -C .carry/before
#   cp bench/scale.py .carry/before/bench/    # this bench's figures (step time, codes hash) for both
# Writes $OUT/scale-{before,after}.{json,log} and $OUT/semantic-ids-{before,after}.{md,json}; prints the scale
# figures side by side.
source "$(dirname "$0")/env.sh"
BEFORE=$1 N=${2:-1000000} CATALOG=$3
root() { [ $1 = before ] && echo $BEFORE || echo .; }
if [ "$N" != 0 ]; then
  export OMP_NUM_THREADS=16 MKL_NUM_THREADS=16  # the metrics' exact kNN runs on the CPU
  for side in ${SCALE_SIDES:-before after}; do
    PYTHONPATH=$(root $side):$PYTHONPATH python3 $(root $side)/bench/scale.py --n $N --device cuda \
      --stages train,encode --json $OUT/scale-$side.json > $OUT/scale-$side.log 2>&1 || tail -n 5 $OUT/scale-$side.log
  done
  python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
b, a = ({**f, **f.get("metrics", {})} for f in (json.loads(p.read_text()) if p.exists() else {}
                                                   for p in (out / "scale-before.json", out / "scale-after.json")))
for key in ("train_s", "step_ms_median", "steps", "encode_s", "codes_sha256", "cuda_peak_mib", "spearman",
            "high_sim_same_l1", "nmi_l1", "nmi_l2", "purity_l1", "collision_rate", "collision_rate_nearest",
            "reconstruction_cosine", "perplexity_l1", "utilization_l1", "utilization_l2", "utilization_l3",
            "utilization_l4"):
    print(f"{key:24} {b.get(key)!s:>18} {a.get(key)!s:>18}")
PY
fi
if [ -n "$CATALOG" ]; then
  export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
  python3 bench/semantic_ids.py --datasets $CATALOG --flavors precision --methods rkmeans --seeds 0 --device cuda \
    > $OUT/embed.log 2>&1  # embeds once (cached for the runs below)
  mkdir -p /tmp/sid
  for side in before after; do for seed in 0 1 2; do
    PYTHONPATH=$(root $side):$PYTHONPATH python3 $(root $side)/bench/semantic_ids.py --datasets $CATALOG \
      --flavors precision --methods rqvae --seeds $seed --device cuda --json-out /tmp/sid/$side-$seed.json \
      > /tmp/sid/$side-$seed.log 2>&1 &
  done; done
  wait
  for side in before after; do
    python3 bench/semantic_ids.py --merge /tmp/sid/$side-*.json --device cuda --out $OUT/semantic-ids-$side.md \
      --json-out $OUT/semantic-ids-$side.json > /dev/null 2>&1 || tail -n 3 /tmp/sid/$side-*.log
    grep -h "RQ-VAE" $OUT/semantic-ids-$side.md | sed "s/^/$side: /"
  done
fi
