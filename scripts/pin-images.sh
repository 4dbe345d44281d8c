#!/usr/bin/env bash
# Pin every base and service image by digest: each `FROM name:tag` in the Dockerfile and each
# `image: name:tag` in docker-compose.yml becomes `name:tag@sha256:…`, the digest the registry
# serves for that tag now (the multi-platform index, so every platform keeps working). An image
# already pinned is resolved again and its digest replaced when the tag has moved (a rebuilt base
# with security fixes): review the diff, rebuild, commit.
#
#   scripts/pin-images.sh          resolve and rewrite the files
#   scripts/pin-images.sh --check  only compare: exit 1 when a pin is missing or stale
#
# Needs a registry that answers: `crane` (go-containerregistry) or `docker buildx imagetools`
# (a Docker CLI with buildx; no engine needed). The development machines reach no image
# registry, so this has not been run there (docs/deployment.md#base-images-pinned-by-digest).
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
[[ "${1:-}" == "--check" ]] && check=true

resolve() {
  if command -v crane >/dev/null; then
    crane digest "$1"
  elif docker buildx version >/dev/null 2>&1; then
    docker buildx imagetools inspect "$1" --format '{{.Manifest.Digest}}'
  else
    echo "pin-images: neither crane nor docker buildx is available" >&2
    return 1
  fi
}

# name:tag[@sha256:…] references: FROM lines (not earlier stages) and compose `image:` values
# (not the image built here).
images() {
  awk 'toupper($1) == "FROM" { for (i = 2; i <= NF; i++) if ($i !~ /^--/) { print $i; break } }' Dockerfile
  sed -n 's/^ *image: *\([^ #]*\).*/\1/p' docker-compose.yml
}

stale=0
for ref in $(images | sort -u); do
  base=${ref%@*}
  [[ "$base" == *:* && "$base" != tracefin:* ]] || continue
  digest=$(resolve "$base")
  if [[ ! "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then
    echo "pin-images: $base: no digest (got '$digest')" >&2
    exit 1
  fi
  pinned="$base@$digest"
  if [[ "$ref" == "$pinned" ]]; then
    echo "ok      $pinned"
    continue
  fi
  stale=1
  echo "$([[ "$ref" == *@* ]] && echo moved || echo unpinned) $base -> $digest"
  if ! $check; then
    for file in Dockerfile docker-compose.yml; do
      # The reference, with or without an old digest, followed by a blank, the line's end or `"`.
      sed -i -E "s#(^|[ \"])$(printf '%s' "$base" | sed 's/[.[\*^$/]/\\&/g')(@sha256:[0-9a-f]{64})?([ \"]|\$)#\1$pinned\3#" "$file"
    done
  fi
done
if $check && ((stale)); then
  echo "pin-images: run scripts/pin-images.sh and commit the result" >&2
  exit 1
fi
