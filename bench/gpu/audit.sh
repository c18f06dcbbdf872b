#!/bin/bash
# usage: [P=2] [BUDGET=500] [CLEANLAB=0] [CLEANLAB_TEXT=1] [LIMIT=N] bench/gpu/audit.sh DATASET REGIMES [SEEDS]
#   e.g. bench/gpu/audit.sh bigbasket uniform,sibling; LIMIT=6000 bench/gpu/audit.sh bigbasket+2level+nodesc uniform
# DATASET may name a variant (bench/common.VARIANTS); LIMIT: a fixed random sample of N products.
# CLEANLAB=0: semid only (no cleanlab in the "a" jobs, no "b" jobs). CLEANLAB_TEXT=1: also, first, per regime one "c" job
# at the first seed: cleanlab alone, its classifier reading semid's classifier inputs (embeddings + words).
# ONLY=ab (letters of job kinds): run only those kinds. ONLY=d: cleanlab alone (embeddings), every regime and seed.
# Jobs, one process each: per regime, the first seed (default 0,1,2) with the recipe's lambda + cleanlab ("a"),
# then (when the seeds start at 0) seed 0 with lambda=0 ("b"), then the other seeds ("a"). P run at a time: many
# processes on one GPU time-slice it (8 side by side did not finish one job in 525 s). A job starts only while the
# call's BUDGET seconds last and is cut when they are spent; each finished job is merged at once into
# $OUT/audit-DATASET.{md,json}, so a call cut short still brings back every job that finished; the next call on the
# same warm machine skips them. On H200: a job with cleanlab ~190 s, one without ~67 s, two side by side.
#    or: bench/gpu/audit.sh memory [N]: bench/audit_memory.py at N products (default 1,000,000) on the GPU, all 16
# cores; figures in $OUT/audit-memory-N.json (peak RSS by stage, score and calibrate seconds, CUDA peak).
source "$(dirname "$0")/env.sh"
if [ "$1" = memory ]; then
  OMP_NUM_THREADS=16 MKL_NUM_THREADS=16 python3 bench/audit_memory.py --n ${2:-1000000} --device cuda \
    --json $OUT/audit-memory-${2:-1000000}.json
  exit
fi
P=${P:-2}; export OMP_NUM_THREADS=$(( 16 / P )) MKL_NUM_THREADS=$(( 16 / P )) DEADLINE=$(( $(date +%s) + ${BUDGET:-500} )) d=$1
mkdir -p /tmp/aud
export LIMIT_OPT=${LIMIT:+--limit $LIMIT}
python3 -c "import sys; sys.path.insert(0,'.'); from bench.common import *; embed_dataset(load_dataset('$d', limit=${LIMIT:-None}), 'precision', 'cuda')"
job() {  # job KIND REGIME SEED
  local opts="--quantizers rqvae" name=$d${LIMIT:+-n$LIMIT}-$1-$2-$3 left=$(( DEADLINE - $(date +%s) )) t0=$(date +%s)
  [ "$1" = b ] && opts="--quantizers rqvae:0 --no-cleanlab --no-ablation"
  [ "$1" = a ] && [ "${CLEANLAB:-1}" = 0 ] && opts="--quantizers rqvae --no-cleanlab"
  [ "$1" = c ] && opts="--quantizers= --cleanlab-text --no-ablation"
  [ "$1" = d ] && opts="--quantizers= --no-ablation"
  [ -f /tmp/aud/$name.json ] && return  # finished in an earlier call on this (still warm) machine
  [ $left -lt 30 ] && { echo "$name: not started (budget spent)"; return; }
  if timeout $left python3 -m bench.audit --device cuda --datasets $d --regimes $2 --seeds $3 $opts $LIMIT_OPT \
      --out /tmp/aud/$name.md --json /tmp/aud/$name.json.part > /tmp/aud/$name.log 2>&1; then
    mv /tmp/aud/$name.json.part /tmp/aud/$name.json
    echo "$name: $(( $(date +%s) - t0 )) s; $(grep -h 'codes .*s, scoring\|cleanlab (C' /tmp/aud/$name.log | tr -s ' ' | tr '\n' ';')"
    flock /tmp/aud/lock python3 -m bench.audit --device cuda --datasets $d --quantizers rqvae,rqvae:0 $LIMIT_OPT \
      --merge /tmp/aud/$d${LIMIT:+-n$LIMIT}-*.json --out $OUT/audit-${d//+/_}.md --json $OUT/audit-${d//+/_}.json > /dev/null 2>&1
  else echo "$name: rc $? after $(( $(date +%s) - t0 )) s; $(tail -n 2 /tmp/aud/$name.log | tr '\n' ' ')"; fi
}
export -f job
IFS=, read -ra regimes <<< "$2"; IFS=, read -ra seeds <<< "${3:-0,1,2}"
{ [ "${CLEANLAB_TEXT:-0}" = 1 ] && for r in "${regimes[@]}"; do echo c $r ${seeds[0]}; done
  for r in "${regimes[@]}"; do echo a $r ${seeds[0]}; done
  [ "${seeds[0]}" = 0 ] && [ "${CLEANLAB:-1}" != 0 ] && for r in "${regimes[@]}"; do echo b $r 0; done
  for s in "${seeds[@]:1}"; do for r in "${regimes[@]}"; do echo a $r $s; done; done
  for s in "${seeds[@]}"; do for r in "${regimes[@]}"; do echo d $r $s; done; done; } | grep "^[${ONLY:-abc}] " | xargs -P $P -L 1 bash -c 'job "$@"' _
