// Package remotecommand is the wire protocol of `skiff exec`: after an
// HTTP/1.1 upgrade to Protocol, both ends exchange frames
//
//	+--------+----------------------+-----------------+
//	| stream | length (uint32, BE)  | payload         |
//	| 1 byte | 4 bytes              | length bytes    |
//	+--------+----------------------+-----------------+
//
// on one connection: Stdin, StdinClose and Resize from the client, Stdout,
// Stderr and one final Exit from the server. The API server relays the
// upgraded connection byte for byte between the CLI and the node agent, so
// only those two speak it: Run is the client's side, Serve the agent's.
//
// A payload is at most MaxPayload bytes. Resize carries the terminal's
// width and height as two big-endian uint16. Exit carries the command's
// exit code as a big-endian int32, followed by a message (UTF-8) when the
// command could not run at all. Closing the connection without an Exit
// frame aborts: the agent kills the command, the client reports an error.
//
// remotecommand depends on the standard library only.
package remotecommand
