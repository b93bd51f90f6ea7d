#!/usr/bin/env bash
# Runs skiff's benchmark programs one after another and prints their
# results (make bench). Each program starts its own clusters on 127.0.0.1
# in temporary directories and kills them by PID when it ends.
#
# Knobs (environment): BENCH_CLIENTS (1,16,256), BENCH_DURATION (10s),
# BENCH_ROUNDS (1), BENCH_TRIALS (20), BENCH_PODS (10000), BENCH_NODES
# (5000 simulated nodes) and BENCH_SCHED_PODS (50000) for the scheduler,
# BENCH_STARTS (50 pod starts per variant) and BENCH_NODE_PODS (100 pods
# on one node) for podstart, BENCH_ONLY (a space-separated subset of:
# writes failover rss scheduler podstart datapath lab; the scheduler alone takes ~30
# minutes; podstart, datapath and lab need root; podstart and lab need containerd, runc and the CNI
# plugins, and run in network namespaces of their own), BENCH_RESULTS (a directory to
# also write each program's output to).
set -euo pipefail
set -u

cd "$(dirname "$0")/.."

clients=${BENCH_CLIENTS:-1,16,256}
duration=${BENCH_DURATION:-10s}
rounds=${BENCH_ROUNDS:-1}
trials=${BENCH_TRIALS:-20}
pods=${BENCH_PODS:-10000}
nodes=${BENCH_NODES:-5000}
sched_pods=${BENCH_SCHED_PODS:-50000}
starts=${BENCH_STARTS:-50}
node_pods=${BENCH_NODE_PODS:-100}
only=${BENCH_ONLY:-writes failover rss scheduler podstart datapath lab}
results=${BENCH_RESULTS:-}

echo "==> make build"
make --no-print-directory build
case " $only " in *" podstart "*|*" lab "*)
	echo "==> make images (the echo image podstart and lab start)"
	make --no-print-directory images
	;;
esac

if ! command -v etcd >/dev/null 2>&1; then
	echo "==> installing etcd-server (the baseline)"
	if [ "$(id -u)" -ne 0 ]; then
		echo "etcd is missing and this is not root: apt-get install -y etcd-server" >&2
		exit 1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
fi

echo "==> machine: $(nproc) CPUs, $(uname -sr), $(. /etc/os-release && echo "$PRETTY_NAME"), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "==> $(etcd --version | head -1), $(go version)"

# run NAME ARGS...: runs bench/NAME, printing and (with BENCH_RESULTS) saving
# its output.
run() {
	local name=$1
	shift
	case " $only " in *" $name "*) ;; *) return 0 ;; esac
	echo
	echo "==> go run ./bench/$name $*"
	if [ -n "$results" ]; then
		mkdir -p "$results"
		go run "./bench/$name" "$@" 2>&1 | tee "$results/$name-$(date -u +%Y%m%dT%H%M%SZ).txt"
	else
		go run "./bench/$name" "$@"
	fi
}

run writes -clients "$clients" -duration "$duration" -rounds "$rounds"
run failover -trials "$trials"
run rss -pods "$pods"
run scheduler -nodes "$nodes" -pods "$sched_pods"
if [ "$(id -u)" -eq 0 ]; then
	run podstart -starts "$starts" -fleet "$node_pods"
	case " $only " in *" datapath "*)
		# The baselines of bench/datapath: HAProxy, iptables DNAT and
		# nftables rules (all inside the benchmark's own namespace).
		for pkg in haproxy:haproxy iptables:iptables nft:nftables; do
			command -v "${pkg%%:*}" >/dev/null 2>&1 || {
				echo "==> installing ${pkg#*:} (a datapath baseline)"
				DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkg#*:}" >/dev/null
			}
		done ;;
	esac
	run datapath
	run lab -kills "$trials"
else
	case " $only " in *" podstart "*|*" datapath "*|*" lab "*) echo && echo "==> podstart, datapath and lab skipped: they need root" ;; esac
fi
