#!/bin/bash
# usage: bench/gpu/train_speed.sh BEFORE [N] [CATALOG]     (GPU machine; docs/performance.md)
# Training speed and code quality of two versions of the quantizer core side by side, one after the other on
# one GPU: bench/scale.py --stages train,encode on N synthetic products (default 1,000,000: the default recipe
# trains on a 100,000-product sample) and, with CATALOG (e.g. bigbasket), bench/semantic_ids.py --methods rqvae
# on that real catalog, first with BEFORE's core, then with this tree's. BEFORE is an earlier commit's core and
# benches, unpacked inside the carried folder:
#   mkdir -p .carry/before && git archive <commit> quantizer/__init__.py quantizer/core bench | tar -x -C .carry/before
#   cp bench/scale.py .carry/before/bench/    # this bench's figures (step time, codes hash) for both
# Writes $OUT/scale-{before,after}.json and .log (and semantic-ids-*.json), then prints the figures side by side.
source "$(dirname "$0")/env.sh"
export OMP_NUM_THREADS=16 MKL_NUM_THREADS=16  # the metrics' exact kNN runs on the CPU
BEFORE=$1 N=${2:-1000000} CATALOG=$3
for side in before after; do
  root=.; [ $side = before ] && root=$BEFORE
  PYTHONPATH=$root:$PYTHONPATH python3 $root/bench/scale.py --n $N --device cuda --stages train,encode \
    --json $OUT/scale-$side.json > $OUT/scale-$side.log 2>&1 || tail -n 5 $OUT/scale-$side.log
  [ -n "$CATALOG" ] && { PYTHONPATH=$root:$PYTHONPATH python3 $root/bench/semantic_ids.py --datasets $CATALOG \
    --flavors precision --methods rqvae --seeds 0 --device cuda --json-out $OUT/semantic-ids-$side.json \
    > $OUT/semantic-ids-$side.log 2>&1 || tail -n 5 $OUT/semantic-ids-$side.log; }
done
python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.exists() else {}
b, a = load("scale-before.json"), load("scale-after.json")
for key in ("train_s", "step_ms_median", "steps", "encode_s", "codes_sha256", "cuda_peak_mib"):
    print(f"{key:28} {b.get(key)!s:>18} {a.get(key)!s:>18}")
for key in sorted(set(b.get("metrics", {})) | set(a.get("metrics", {}))):
    print(f"{key:28} {b.get('metrics', {}).get(key)!s:>18} {a.get('metrics', {}).get(key)!s:>18}")
sb, sa = load("semantic-ids-before.json"), load("semantic-ids-after.json")
if sb or sa:
    print("semantic_ids before:", json.dumps(sb)[:3000]); print("semantic_ids after:", json.dumps(sa)[:3000])
PY
