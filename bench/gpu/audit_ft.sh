#!/bin/bash
# usage: bench/gpu/audit_ft.sh [audit_signals.py ft options]   (run: carry [".carry/minilm", ".carry/ft"])
# The audit study's fine-tuned encoder (issue 21) on the GPU machine: every job's inputs in .carry/ft (built here by
# `audit_signals.py ft-inputs`), FT_PROCS processes side by side on the one GPU, probabilities in $OUT/ft; merged here
# by `audit_signals.py ft-merge`.
set -euo pipefail
export PYTHONPATH=. SEMID_EMBEDDING_MODEL=$PWD/.carry/minilm PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4 MKL_NUM_THREADS=4
P=${FT_PROCS:-4}
files=(.carry/ft/*.npz)
pids=()
for i in $(seq 0 $((P - 1))); do
  mine=$(printf '%s\n' "${files[@]}" | awk -v i="$i" -v p="$P" '(NR - 1) % p == i')
  [ -n "$mine" ] && { python3 bench/studies/audit_signals.py ft $mine --out "$OUT/ft" "$@" & pids+=($!); }
done
for pid in "${pids[@]}"; do wait "$pid"; done
# the device tool brings back no file with a "+" in its name: ft-merge reads "_" as "+"
for f in "$OUT"/ft/*+*; do if [ -e "$f" ]; then mv "$f" "${f//+/_}"; fi; done
