#!/bin/bash
# usage: bench/gpu/e2e.sh N [bench/e2e.py options]   (run: carry [".carry/minilm", ".carry/app"])
#    or: bench/gpu/e2e.sh embed N [bench/embed.py options]: bench/embed.py --demo N, figures in $OUT/embed-N-gpu.json
#    or: bench/gpu/e2e.sh audit-fanout [--ways fanout one]: bench/studies/audit_fanout.py on the database N left
#    or: bench/gpu/e2e.sh train-fanout [--ways fanout one]: bench/studies/train_fanout.py, likewise
# bench/e2e.py on the GPU machine: the application's dependencies unpacked from .carry/app/appsite.tar.xz (built
# here by bench/gpu/pack_app.sh), the embedded PostgreSQL and Redis under SEMID_HOME=/tmp/e2e, the carried model
# folder; every stage that has a device (embed, train, assign, audit) finds the GPU. Figures in
# $OUT/e2e-N-gpu.json. The unpacked folder and the database stay on the machine while it is warm.
set -euo pipefail
[ -d /tmp/appsite ] || tar -xJf .carry/app/appsite.tar.xz -C /tmp
export PYTHONPATH=/tmp/appsite:. SEMID_EMBEDDING_MODEL=$PWD/.carry/minilm SEMID_HOME=/tmp/e2e PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=16 MKL_NUM_THREADS=16
if [ "$1" = embed ]; then
  python3 bench/embed.py --demo "$2" --json "$OUT/embed-$2-gpu.json" "${@:3}"
elif [ "$1" = audit-fanout ]; then  # on the database an earlier N left (same call, or the machine still warm)
  python3 bench/studies/audit_fanout.py --json "$OUT/audit-fanout-gpu.json" "${@:2}"
elif [ "$1" = train-fanout ]; then  # likewise
  python3 bench/studies/train_fanout.py --json "$OUT/train-fanout-gpu.json" "${@:2}"
else
  python3 bench/e2e.py --n "$1" --json "$OUT/e2e-$1-gpu.json" "${@:2}"
fi
