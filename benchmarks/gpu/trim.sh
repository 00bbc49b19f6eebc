#!/usr/bin/env bash
# The GPU check machine takes a working tree of at most 64 MiB; the tracked tree is larger (the model set's
# FP32 and FP16 ONNX files). `trim.sh out` moves the files the decode-loop check does not read (the FP16
# variants: it runs the FP32 graphs in half precision instead; the UNet checkpoint) to ../tgvc-trimmed beside
# the checkout; `trim.sh back` restores them.
# Run `trim.sh back` right after the device call: until then `git status` shows them deleted.
set -eu
cd "$(dirname "$0")/../.."
AWAY=../tgvc-trimmed
FILES="runtime/tgvc_rt/models/default/interpolator_fp16.onnx runtime/tgvc_rt/models/default/unet_fp16.onnx
runtime/tgvc_rt/models/default/vae_encoder_fp16.onnx
runtime/tgvc_rt/models/default/vae_decoder_fp16.onnx
export/checkpoints/unet_default.pt"
case "${1:-}" in
  out)  for f in $FILES; do mkdir -p "$AWAY/$(dirname "$f")"; mv "$f" "$AWAY/$f"; done ;;
  back) for f in $FILES; do mv "$AWAY/$f" "$f"; done; git status --short -- $FILES ;;
  *) echo "usage: $0 out|back" >&2; exit 2 ;;
esac
git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {printf "tracked files present: %.1f MiB\n", s/1048576}'
