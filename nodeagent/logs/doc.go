// Package logs writes and reads container log files in the CRI format, the
// one the kubelet and containerd's CRI plugin use:
//
//	<RFC3339Nano timestamp> <stdout|stderr> <F|P> <text>\n
//
// One record is one line of the container's output. A line longer than
// MaxLineSize (16 KiB) is split into partial records (tag P) followed by a
// final one (tag F); output that ends without a newline is written as a P
// record when the stream closes.
//
// Writer turns a container's stdout and stderr into records in one file and
// rotates it by size (path, path.1 … path.N, oldest last). Read decodes the
// records back into lines (joining partial records), across rotated files,
// with kubectl's options: tail, timestamps, since, follow.
//
// logs depends on the standard library only; the runtime feeds a Writer,
// the agent's HTTPS server (nodeagent/server) calls Read.
package logs
