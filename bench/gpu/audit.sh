#!/bin/bash
# usage: [P=8] [BUDGET=520] bench/gpu/audit.sh DATASET REGIMES [SEEDS]   e.g. bench/gpu/audit.sh bigbasket uniform,sibling
# Jobs, one process each: per regime, every seed (default 0,1,2) with the recipe's lambda + cleanlab ("a"), and
# when the seeds start at 0, seed 0 with lambda=0 ("b"); the first seed of every regime first. P run at a time; every job is cut when the call's
# BUDGET seconds are spent, so the merge into $OUT always runs (16 processes at once ran past a 570-s call).
# $OUT/audit-jobs-DATASET.tgz keeps each finished job's JSON and every log, to merge with other calls' jobs.
source "$(dirname "$0")/env.sh"
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 DEADLINE=$(( $(date +%s) + ${BUDGET:-520} )) d=$1
mkdir -p /tmp/aud
python3 -c "import sys; sys.path.insert(0,'.'); from bench.common import *; embed_dataset(load_dataset('$d'), 'precision', 'cuda')"
job() {  # job KIND REGIME SEED
  local opts="--quantizers rqvae" name=$d-$1-$2-$3
  [ "$1" = b ] && opts="--quantizers rqvae:0 --no-cleanlab --no-ablation"
  timeout $(( DEADLINE - $(date +%s) )) python3 -m bench.audit --device cuda --datasets $d --regimes $2 --seeds $3 \
    $opts --out /tmp/aud/$name.md --json /tmp/aud/$name.json > /tmp/aud/$name.log 2>&1 || echo "$name: rc $?"
}
export -f job
IFS=, read -ra regimes <<< "$2"; IFS=, read -ra seeds <<< "${3:-0,1,2}"
{ for r in "${regimes[@]}"; do echo a $r ${seeds[0]}; [ "${seeds[0]}" = 0 ] && echo b $r 0; done
  for s in "${seeds[@]:1}"; do for r in "${regimes[@]}"; do echo a $r $s; done; done; } | xargs -P ${P:-8} -L 1 bash -c 'job "$@"' _
grep -h "codes .*s, scoring\|cleanlab (C" /tmp/aud/*.log | head -40
tar -czf $OUT/audit-jobs-$d.tgz -C /tmp/aud .
ls /tmp/aud/*.json >/dev/null 2>&1 && python3 -m bench.audit --device cuda --datasets $d --quantizers rqvae,rqvae:0 \
  --merge /tmp/aud/*.json --out $OUT/audit-$d.md --json $OUT/audit-$d.json
