#!/usr/bin/env bash
# Installs what `make test` needs when it is missing. Idempotent: apt-get
# runs only when a command is absent. Today the tests need nothing beyond Go
# and git; containerd, runc, the CNI plugins and clang join this list as the
# node agent and the datapath arrive.
set -euo pipefail

# Go comes from go.dev, not Debian (go.mod needs a newer toolchain than
# Debian ships): report it rather than install the wrong one.
if ! command -v go >/dev/null 2>&1; then
	echo "deps: go not found in PATH; install Go $(sed -n 's/^go //p' "$(dirname "$0")/../go.mod") or newer" >&2
	exit 1
fi

# command -> Debian package
declare -A want=(
	[git]=git
	[ip]=iproute2
	[nsenter]=util-linux
)

pkgs=()
for cmd in "${!want[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || pkgs+=("${want[$cmd]}")
done

if [ "${#pkgs[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing ${pkgs[*]}; install them or run as root" >&2
		exit 1
	fi
	echo "deps: installing ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${pkgs[@]}"
fi
echo "deps: ok"
