# Sourced by the scripts here, on the GPU machine (no network, no pip index): install the carried
# wheels (.carry/whl) and point the benchmarks at the carried data and model; one thread a process,
# since several run side by side.
python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .carry/whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:. SEMID_DATA_DIR=$PWD/.carry/data SEMID_EMBEDDING_MODEL=$PWD/.carry/minilm \
  SEMID_HOME=/tmp/sh PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
