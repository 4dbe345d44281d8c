#!/usr/bin/env bash
# Make sure headless Chromium is available for tests/integration/test_browser.py: nothing to do
# when it is already installed; as root on a Debian-like machine, install Debian's `chromium`.
# Never fails the build: without a browser the browser test skips itself.
set -uo pipefail

if command -v chromium >/dev/null 2>&1 || [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
skip() {
  echo "ensure-browser: chromium not installed ($1); the browser test will be skipped" >&2
  exit 0
}
[[ $(id -u) -eq 0 ]] || skip "not root, cannot apt-get install chromium"
command -v apt-get >/dev/null 2>&1 || skip "no apt-get on this machine"

echo "ensure-browser: installing chromium with apt-get (headless browser test)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
# Wait (up to 5 min) for another apt/dpkg run to release its lock instead of failing at once.
lock=(-o DPkg::Lock::Timeout=300)
if ! apt-get "${lock[@]}" update -qq >"$log" 2>&1; then
  skip "apt-get update failed: $(tail -n 1 "$log")"
fi
# fonts-wqy-zenhei: the Chinese page must render CJK glyphs in the screenshot, not boxes.
if ! apt-get "${lock[@]}" install -y -qq chromium fonts-wqy-zenhei >"$log" 2>&1; then
  skip "apt-get install chromium failed: $(tail -n 1 "$log")"
fi
if ! command -v chromium >/dev/null 2>&1 && [[ ! -x /usr/bin/chromium ]]; then
  skip "apt-get install chromium left no chromium on PATH"
fi
exit 0
