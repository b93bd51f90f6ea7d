package bpf

// The objects are compiled for little-endian targets only (amd64, arm64),
// with the Debian clang-14 that test/deps.sh installs; `make generate` runs
// these lines. linux/bpf.h includes asm/types.h, which Debian keeps under
// the multiarch directory.
//go:generate go tool bpf2go -cc clang-14 -cflags "-O2 -mcpu=v3 -Wall -Werror" -target bpfel -type svc_key -type svc_value -type backend_key -type backend_value -type member_key -type affinity_key -type affinity_value -type revnat_key -type revnat_value -type sock_revnat -type counters lb lb.c -- -I/usr/include/x86_64-linux-gnu -Iinclude
//go:generate go tool bpf2go -cc clang-14 -cflags "-O2 -mcpu=v3 -Wall -Werror" -target bpfel -type stale_key stale stale.c -- -I/usr/include/x86_64-linux-gnu -Iinclude
//go:generate go tool bpf2go -cc clang-14 -cflags "-O2 -mcpu=v3 -Wall -Werror" -target bpfel -type drop_config -type drop_counters drop drop.c -- -I/usr/include/x86_64-linux-gnu -Iinclude
