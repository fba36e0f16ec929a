#!/usr/bin/env bash
# Runs credd's whole test suite on a fresh machine.
#
# Installs the peers the end-to-end tests run against into target/peers (Claude Code,
# oauth2-mock-server and oidc-provider from npm; moto's STS server, boto3, google-auth,
# azure-identity and the MCP Python SDK from PyPI, in a virtualenv), builds the binaries,
# and runs every test in the workspace. Nothing outside the checkout is touched except Debian packages (Node.js,
# npm, python3-venv, systemd's tools, tinyproxy, openssl, a desktop to test against: Xvfb,
# xdotool, zenity, D-Bus, dunst, gnome-keyring and secret-tool, Chromium and chromedriver for
# the browser sign-in, and for forwards OpenSSH,
# Podman, runc, mmdebstrap and Debian's boto3, when missing), the account `credd-remote` that
# the SSH tests log in as, and a Debian root filesystem for the container tests, built into
# target/peers.
set -euo pipefail
cd "$(dirname "$0")/.."

CLAUDE_CODE_VERSION=2.1.332
MOTO_VERSION=5.2.5
BOTO3_VERSION=1.43.11
GOOGLE_AUTH_VERSION=2.62.2
REQUESTS_VERSION=2.32.5
AZURE_IDENTITY_VERSION=1.27.0
BEDROCK_TOKEN_GENERATOR_VERSION=1.1.0
MCP_VERSION=2.3.0
OAUTH2_MOCK_SERVER_VERSION=9.3.0
OIDC_PROVIDER_VERSION=9.13.3
PEERS="$PWD/target/peers"

step() { printf '\n==> %s\n' "$*"; }

apt_install() {
    step "installing $* (Debian packages)"
    local sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq "$@"
}

command -v npm >/dev/null 2>&1 || apt_install nodejs npm
command -v systemd-socket-activate >/dev/null 2>&1 || apt_install systemd
command -v tinyproxy >/dev/null 2>&1 || apt_install tinyproxy
command -v openssl >/dev/null 2>&1 || apt_install openssl
# setup's tests keep the proxy's caller secret out of real repositories.
command -v git >/dev/null 2>&1 || apt_install git
python3 -c "import venv, ensurepip" 2>/dev/null || apt_install python3-venv
# Forwards: a real OpenSSH server and client, with a second account standing for the remote
# user (key login only; `*` is no password, not a locked account) and Debian's boto3 as a
# remote has it; and Podman with runc running a Debian root filesystem mmdebstrap builds.
for tool in sshd ssh podman runc mmdebstrap; do
    if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$tool" ]; then
        apt_install openssh-server openssh-client podman runc mmdebstrap
        break
    fi
done
/usr/bin/python3 -c "import boto3" 2>/dev/null || apt_install python3-boto3
# A real browser for the OpenID Connect sign-in, driven over WebDriver.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install chromium chromium-driver
fi
if ! id credd-remote >/dev/null 2>&1; then
    step "creating the account credd-remote, the remote user of the SSH tests"
    if [ "$(id -u)" -eq 0 ]; then as_root=""; else as_root="sudo"; fi
    $as_root useradd --create-home --shell /bin/bash --password '*' credd-remote
fi
# A desktop for the desktop-prompt, notification and secret-store tests: an X server, a person
# typing, the prompt itself, a session D-Bus with a notification server and a Secret Service.
for tool in Xvfb xdotool zenity dbus-daemon dbus-send dunst dunstctl gnome-keyring-daemon secret-tool; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        apt_install xvfb xdotool zenity dbus-daemon dbus-bin dunst gnome-keyring libsecret-tools
        break
    fi
done

venv="$PEERS/venv"
if ! "$venv/bin/python" -c "import boto3, moto, google.auth, azure.identity, aws_bedrock_token_generator, importlib.metadata as m; assert moto.__version__ == '$MOTO_VERSION' and google.auth.__version__ == '$GOOGLE_AUTH_VERSION' and azure.identity.__version__ == '$AZURE_IDENTITY_VERSION' and m.version('mcp') == '$MCP_VERSION'" 2>/dev/null; then
    step "installing moto[server] $MOTO_VERSION, boto3 $BOTO3_VERSION, google-auth $GOOGLE_AUTH_VERSION, azure-identity $AZURE_IDENTITY_VERSION, aws-bedrock-token-generator $BEDROCK_TOKEN_GENERATOR_VERSION and the MCP Python SDK (mcp) $MCP_VERSION from PyPI into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "moto[server]==$MOTO_VERSION" "boto3==$BOTO3_VERSION" \
        "google-auth==$GOOGLE_AUTH_VERSION" "requests==$REQUESTS_VERSION" \
        "azure-identity==$AZURE_IDENTITY_VERSION" \
        "aws-bedrock-token-generator==$BEDROCK_TOKEN_GENERATOR_VERSION" \
        "mcp==$MCP_VERSION"
fi
export CREDD_PEERS_VENV="$venv"

claude="$PEERS/node_modules/.bin/claude"
if ! "$claude" --version 2>/dev/null | grep -q "^$CLAUDE_CODE_VERSION"; then
    step "installing Claude Code $CLAUDE_CODE_VERSION from npm into $PEERS"
    mkdir -p "$PEERS"
    [ -f "$PEERS/package.json" ] || echo '{"private": true}' > "$PEERS/package.json"
    npm install --prefix "$PEERS" --no-audit --no-fund --loglevel=error \
        "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"
    # The package's postinstall puts the native binary in place; run it if npm skipped it.
    if ! "$claude" --version >/dev/null 2>&1; then
        (cd "$PEERS/node_modules/@anthropic-ai/claude-code" && node install.cjs)
    fi
    "$claude" --version
fi
export CREDD_CLAUDE_BIN="$claude"

if ! grep -qs "\"version\": \"$OAUTH2_MOCK_SERVER_VERSION\"" "$PEERS/node_modules/oauth2-mock-server/package.json"; then
    step "installing oauth2-mock-server $OAUTH2_MOCK_SERVER_VERSION from npm into $PEERS"
    npm install --prefix "$PEERS" --no-audit --no-fund --loglevel=error \
        "oauth2-mock-server@$OAUTH2_MOCK_SERVER_VERSION"
fi
if ! grep -qs "\"version\": \"$OIDC_PROVIDER_VERSION\"" "$PEERS/node_modules/oidc-provider/package.json"; then
    step "installing oidc-provider $OIDC_PROVIDER_VERSION from npm into $PEERS"
    npm install --prefix "$PEERS" --no-audit --no-fund --loglevel=error \
        "oidc-provider@$OIDC_PROVIDER_VERSION"
fi
export CREDD_PEERS_DIR="$PEERS"

# A Debian root filesystem for the container tests (no image registry is needed): the suite
# this machine runs, so the credd built here runs inside; Debian's python3 and boto3.
rootfs="$PEERS/rootfs"
if ! [ -f "$rootfs/.credd-rootfs-1" ]; then
    suite=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    step "building a Debian ${suite:-bookworm} root filesystem with mmdebstrap into $rootfs"
    rm -rf "$rootfs" "$rootfs.tmp"
    mmdebstrap --quiet --variant=minbase --include=python3,python3-boto3 \
        "${suite:-bookworm}" "$rootfs.tmp"
    touch "$rootfs.tmp/.credd-rootfs-1"
    mv "$rootfs.tmp" "$rootfs"
fi
export CREDD_ROOTFS="$rootfs"

step "building credd and credd-daemon"
cargo build --locked --workspace --bins --features credd/docs

step "running the tests"
cargo test --locked --workspace
