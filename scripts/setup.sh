#!/usr/bin/env bash
# Create .venv with everything the API, the workers and the tests need. Safe to run again.
#   SOUNDBOX_TORCH   the torch requirement (default torch==2.13.0, the CPU wheel this machine has;
#                    on a GPU host e.g. "torch==2.11.0 --index-url https://download.pytorch.org/whl/cu130")
set -euo pipefail
cd "$(dirname "$0")/.."

# The studio's browser tests drive Debian's headless Chromium (nothing is downloaded by Selenium).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium chromium-driver
fi

pipq() {  # quiet pip; hide the machine's harmless "find-links location is ignored" notes
  .venv/bin/pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v 'is ignored: it is neither' || true; }
  return "${PIPESTATUS[0]}"
}

[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
# torch first, on its own, so nothing below pulls a multi-GB CUDA build in its place.
# shellcheck disable=SC2086
.venv/bin/python -c 'import torch' 2>/dev/null || pipq ${SOUNDBOX_TORCH:-torch==2.13.0}
# audiocraft pins torch==2.1.0 and many extras it does not use for generation: install it
# without dependencies; its real runtime imports are the [worker] extra.
.venv/bin/python -c 'import audiocraft' 2>/dev/null || pipq --no-deps audiocraft==1.3.0
pipq -e '.[worker,test]'

# PyPI's torchaudio is a CUDA build whose native library cannot load beside a CPU torch; its
# pure-Python parts are all audiocraft's text-to-audio path needs. Drop the native files then.
.venv/bin/python - <<'PY'
import glob, os, sys, importlib.util
spec = importlib.util.find_spec("torchaudio")
libs = glob.glob(os.path.join(os.path.dirname(spec.origin), "lib", "*.so"))
try:
    import torchaudio  # noqa: F401
except (OSError, ImportError) as exc:
    for path in libs:
        os.remove(path)
    print(f"torchaudio: native library unusable here ({type(exc).__name__}); running it as pure Python", file=sys.stderr)
PY
.venv/bin/python -c 'import torchaudio' && echo "setup done: .venv/bin/soundbox is ready"
