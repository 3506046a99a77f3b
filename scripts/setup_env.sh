#!/usr/bin/env bash
# Create .venv and install the project once (re-run only when pyproject.toml changes).
# torch is installed first and pinned: on a machine without an NVIDIA GPU a bare `torch`
# requirement would pull a CUDA build of several GB. Set TORCH_SPEC or TORCH_INDEX_URL
# (e.g. https://download.pytorch.org/whl/cpu) to choose another build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
stamp="$venv/.installed-$(sha256sum "$root/pyproject.toml" | cut -c1-12)"
if [ -f "$stamp" ]; then exit 0; fi
echo "setting up $venv (once) ..." >&2
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# pip warns once per package about this machine's absent local index folders: keep them out of the log
exec 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  "${pip[@]}" "$torch_spec" --index-url "$TORCH_INDEX_URL"
else
  "${pip[@]}" "$torch_spec"
fi
"${pip[@]}" -e "$root[test]"
rm -f "$venv"/.installed-*
touch "$stamp"
"$venv/bin/python" -c "import torch; print(f'torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')" >&2
