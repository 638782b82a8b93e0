"""The API process stays light: importing it loads no torch (nor audiocraft, librosa or numba)."""

import subprocess
import sys

from tests.conftest import ROOT


def test_api_never_imports_torch():
    code = (
        "import sys\n"
        "import api.main\n"
        "from shared.audio import formats, peaks\n"
        "heavy = [m for m in ('torch', 'torchaudio', 'audiocraft', 'librosa', 'numba') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
