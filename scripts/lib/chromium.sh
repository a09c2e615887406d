# Debian's chromium for the browser tests (tests/browser drive it with Playwright; Playwright's own browser
# download is not used). Usage: . scripts/lib/chromium.sh; ensure_chromium
# shellcheck shell=bash

ensure_chromium() {
    local bin=${CRM_CHROMIUM:-/usr/bin/chromium}
    if [ -x "$bin" ]; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "==> ERROR: the browser tests need Debian's chromium at $bin; install it (as root: apt-get install chromium)" \
             "or point CRM_CHROMIUM at a Chromium binary" >&2
        return 1
    fi
    echo "==> apt-get install chromium (for tests/browser)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # fonts-noto-cjk: the console's Chinese pages render in the screenshots instead of empty boxes
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null
}
