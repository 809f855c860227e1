#!/bin/sh
# Builds the reference environment in $ENV_DIR (default /tmp/llava-env):
#   transformers v4.50.0 source (github shenlongbin/transformers_4_50_0_shopee_album @ 4ce414d, src/)
#   huggingface_hub v0.29.3 source (github huggingface/huggingface_hub, tag v0.29.3 = 5ea7077)
#   stand-ins for safetensors / tokenizers (tools/standins), and patch_transformers.py.
# Needs Debian packages:
#   apt-get install python3-torch python3-numpy python3-pil python3-regex python3-tqdm \
#     python3-filelock python3-packaging python3-jinja2 python3-yaml python3-requests python3-fsspec
#   (+ python3-sentencepiece for Gemma 3's slow GemmaTokenizer, tools/references/gemma3)
# and the two repositories mirrored with the search tool's `fetch` (TRANSFORMERS_GIT, HFHUB_GIT).
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
ENV_DIR=${ENV_DIR:-/tmp/llava-env}
TRANSFORMERS_GIT=${TRANSFORMERS_GIT:?a git directory holding the transformers v4.50.0 source}
HFHUB_GIT=${HFHUB_GIT:?a git directory holding the huggingface_hub v0.29.3 source}
rm -rf "$ENV_DIR"; mkdir -p "$ENV_DIR"
git --git-dir="$TRANSFORMERS_GIT" archive 4ce414d src/transformers | tar -x -C "$ENV_DIR"
git --git-dir="$HFHUB_GIT" archive v0.29.3 src/huggingface_hub | tar -x -C "$ENV_DIR"
cp -r "$HERE"/standins/* "$ENV_DIR/src/"
/usr/bin/python3 "$HERE/patch_transformers.py" "$ENV_DIR/src/transformers"
echo "PYTHONPATH=$ENV_DIR/src HF_HUB_OFFLINE=1 /usr/bin/python3 ..."
