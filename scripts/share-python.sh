#!/usr/bin/env bash
# Notebook steps and hub servers run as each person's own OS account (user isolation), so those
# accounts must reach the Python environment: the interpreter, the virtual environment and this
# checkout (the editable install imports from it). As root, let every account pass through
# (execute, never list) the folders above them; nothing else changes. Without root, nothing to do:
# the control plane then cannot switch accounts either, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || exit 0
for target in "$(readlink -f .venv/bin/python)" "$(pwd -P)/.venv/bin/python" "$(pwd -P)/server_ext"; do
    folder=$(dirname "$target")
    while [ "$folder" != "/" ]; do
        if [ -d "$folder" ] && [ $((8#$(stat -c '%a' "$folder") & 8#001)) -eq 0 ]; then
            chmod o+x "$folder"
            echo "let every account pass through $folder (user isolation runs notebooks as their people)"
        fi
        folder=$(dirname "$folder")
    done
done
