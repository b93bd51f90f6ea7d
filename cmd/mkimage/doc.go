// Command mkimage builds the example workload's image from Go sources,
// without Docker or a registry: `make images` runs it to write
// bin/images/echo.tar (localhost/skiff/echo:latest), which `skiff image
// import` and containerd's Client.Import load.
//
//	go run ./cmd/mkimage [-out bin/images/echo.tar] [-name localhost/skiff/echo:latest]
//	                     [-pkg github.com/skiffhq/skiff/examples/echo] [-busybox auto|yes|no] [-binary PATH]
//
// The image holds the program as /usr/local/bin/echo (built with
// CGO_ENABLED=0, so it needs nothing else), its entrypoint, with "serve" as
// the default argument. With busybox (-busybox auto includes Debian's
// busybox-static when /bin/busybox is one) it also has /bin/sh and the
// usual tools, for exec probes and `skiff exec`.
//
// It runs inside the skiff module (the go tool builds -pkg there) and
// depends on test/imagebuild only.
package main
