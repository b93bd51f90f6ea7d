#!/usr/bin/env bash
# Installs what `make test` needs when it is missing. Idempotent and quiet:
# apt-get runs only when a command or file is absent, and only as root.
# The node agent's integration tests need containerd + runc (started by the
# tests themselves; there is no systemd), the standard CNI plugins, a static
# busybox for test images, iproute2 and nsenter for network namespaces.
# The eBPF datapath (bpf/) is compiled by `make generate` with clang-14,
# llvm-strip, libbpf's headers and the kernel's UAPI headers; its test
# checks that the committed objects match what they produce.
set -euo pipefail

# Go comes from go.dev, not Debian (go.mod needs a newer toolchain than
# Debian ships): report it rather than install the wrong one.
if ! command -v go >/dev/null 2>&1; then
	echo "deps: go not found in PATH; install Go $(sed -n 's/^go //p' "$(dirname "$0")/../go.mod") or newer" >&2
	exit 1
fi

# What must exist (a command name, or an absolute path) -> Debian package.
declare -A want=(
	[git]=git
	[ip]=iproute2
	[nsenter]=util-linux
	[mount]=mount
	[containerd]=containerd
	[containerd-shim-runc-v2]=containerd
	[runc]=runc
	[/bin/busybox]=busybox-static
	[/usr/lib/cni/bridge]=containernetworking-plugins
	[/usr/lib/cni/host-local]=containernetworking-plugins
	[/usr/lib/cni/loopback]=containernetworking-plugins
	[clang-14]=clang-14
	[llvm-strip]=llvm
	[/usr/include/bpf]=libbpf-dev       # header directories: -x holds for them
	[/usr/include/linux]=linux-libc-dev
)

have() {
	case "$1" in
	/*) [ -x "$1" ] ;;
	*) command -v "$1" >/dev/null 2>&1 ;;
	esac
}

declare -A missing=()
for what in "${!want[@]}"; do
	have "$what" || missing[${want[$what]}]=1
done
pkgs=("${!missing[@]}")

if [ "${#pkgs[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing ${pkgs[*]}; install them or run as root" >&2
		exit 1
	fi
	echo "deps: installing ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
	apt-get update -qq -o DPkg::Lock::Timeout=600 >/dev/null
	apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${pkgs[@]}" >/dev/null
	# Debian's containerd package would start the daemon through systemd;
	# without systemd nothing runs, and the tests start their own.
fi
echo "deps: ok"
