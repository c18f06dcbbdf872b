#!/bin/bash
# Dev-split sweep (BigBasket 50%, sample seed 100, train seed 100), one process per config.
# usage: bench/gpu/sweep.sh CONFIGFILE  (lines: name<TAB>method<TAB>json overrides of RQVAEConfig)
source "$(dirname "$0")/env.sh"
ARGS="--datasets bigbasket --flavors precision --seeds 100 --limit 13777 --sample-seed 100 --device cuda"
python3 bench/semantic_ids.py $ARGS --methods rkmeans > $OUT/rkmeans.log 2>&1
while IFS=$'\t' read -r name method cfg; do
  python3 bench/semantic_ids.py $ARGS --methods $method --config "$cfg" --json-out $OUT/$name.json > $OUT/$name.log 2>&1 &
done < "$1"
wait
for f in $OUT/*.log; do echo "== $f"; grep '^{' $f | tail -1; done
