// Package nsrun runs a function on an OS thread that has entered another
// network namespace, and puts the thread back (or retires it) afterwards.
//
// Linux network namespaces belong to threads, not processes, and the Go
// scheduler moves goroutines between threads: a thread left in another
// namespace would silently carry unrelated goroutines (and the sockets
// they open) into it. Do runs the function on a fresh goroutine locked to
// its thread, restores the thread's namespace when the function returns,
// and, if that restore fails, lets the goroutine exit still locked so the
// runtime destroys the thread instead of reusing it (the rule
// containernetworking/plugins' ns.WithNetNSPath follows).
//
// What the function creates in the namespace stays there: sockets opened
// inside keep their namespace after Do returns, and processes forked from
// the locked thread (os/exec) start in it.
//
// nsrun imports the standard library and github.com/vishvananda/netns only.
package nsrun
