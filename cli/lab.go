package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/deploy/lab"
)

// labFlags are the flags every lab subcommand shares.
type labFlags struct {
	name, dir string
}

func (f *labFlags) directory() string {
	if f.dir != "" {
		return f.dir
	}
	return lab.DefaultDir(f.name)
}

func (f *labFlags) open(o *options) (*lab.Lab, error) {
	l, err := lab.Open(f.directory())
	if err != nil {
		return nil, err
	}
	l.SetProgress(o.errOut)
	return l, nil
}

func newLabCmd(o *options) *cobra.Command {
	f := &labFlags{}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run a multi-node cluster on this machine (network namespaces) and inject faults",
		Long: `A multi-node cluster on one machine, as kind or k3d give with containers:
each server and node is a network namespace on a private LAN (a bridge in a
namespace of its own; nothing in this machine's own network changes), running
real skiff server and skiff agent processes; every node runs its own
containerd, pod network and eBPF datapath. The cluster outlives the command;
"skiff lab down" removes all of it.

Faults for trying what production does to a cluster: kill (SIGKILL a
machine's daemon), stop and start, cut and heal (pull and plug a machine's
cable), and drop (lose a share of a machine's packets).`,
		Example: `  skiff lab up                           # 3 servers, 3 nodes
  export SKIFF_CONFIG=/var/lib/skiff/lab/lab/admin.conf
  skiff get nodes
  skiff lab status
  skiff lab kill s1                      # kill -9 a server
  skiff lab cut n2; skiff lab heal n2    # a node off the network and back
  skiff lab exec n1 -- ip route
  skiff lab down`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.name, "name", "lab", "the lab's name (several labs can run at once)")
	pf.StringVar(&f.dir, "dir", "", "the lab's directory: state, data, admin.conf, logs (default /var/lib/skiff/lab/NAME)")
	cmd.AddCommand(newLabUpCmd(o, f), newLabDownCmd(o, f), newLabStatusCmd(o, f), newLabExecCmd(o, f),
		newLabFaultCmd(o, f, "kill", "SIGKILL a machine's daemon (its pods keep running)", (*lab.Lab).Kill),
		newLabFaultCmd(o, f, "stop", "Stop a machine's daemon (SIGTERM, SIGKILL after 15s)", (*lab.Lab).Stop),
		newLabFaultCmd(o, f, "start", "Start a machine's daemon again", (*lab.Lab).Start),
		newLabFaultCmd(o, f, "cut", "Take a machine off the LAN (its cable pulled)", (*lab.Lab).Cut),
		newLabFaultCmd(o, f, "heal", "Put a machine cut off by 'lab cut' back on the LAN", (*lab.Lab).Heal),
		newLabDropCmd(o, f), newLabForwardCmd(o))
	return cmd
}

func newLabUpCmd(o *options, f *labFlags) *cobra.Command {
	cfg := lab.Config{}
	var images []string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create and start a lab cluster",
		Long: `Create the network, start the servers (the first bootstraps, the others join)
and the nodes, and wait until every node is Ready. Needs root, containerd,
runc and the CNI plugins (make run installs them). Without --import-image the
echo example image is imported when bin/images/echo.tar exists (make images).`,
		Example: `  skiff lab up
  skiff lab up --servers 1 --nodes 2 --name small
  skiff lab up --node-grace-period 5s --import-image bin/images/echo.tar`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg.Name, cfg.Dir, cfg.Progress = f.name, f.dir, o.errOut
			if len(images) == 0 {
				if _, err := os.Stat("bin/images/echo.tar"); err == nil {
					images = []string{"bin/images/echo.tar"}
				}
			}
			for _, img := range images {
				abs, err := filepath.Abs(img)
				if err != nil {
					return fmt.Errorf("--import-image %s: %w", img, err)
				}
				cfg.Images = append(cfg.Images, abs)
			}
			l, err := lab.Up(ctx, cfg)
			if err != nil {
				return err
			}
			name := ""
			if f.name != "lab" {
				name = " --name " + f.name
			}
			fmt.Fprintf(o.out, `lab %s: %d servers, %d nodes (logs in %s)

  export SKIFF_CONFIG=%s
  skiff get nodes
  skiff apply -f examples/web.yaml
  skiff lab status%s
  skiff lab down%s
`, l.Name, len(l.ByRole(lab.RoleServer)), len(l.ByRole(lab.RoleNode)), l.LogDir, l.AdminConfig(), name, name)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&cfg.Servers, "servers", 3, "control-plane servers (1-9)")
	fl.IntVar(&cfg.Nodes, "nodes", 3, "node agents (0-50)")
	fl.StringVar(&cfg.LogDir, "log-dir", "", "every process's log (default DIR/logs)")
	fl.DurationVar(&cfg.NodeGracePeriod, "node-grace-period", 10*time.Second, "the servers' --node-grace-period: a silent node's pods are replaced after this")
	fl.StringArrayVar(&images, "import-image", nil, "image tarball every node imports (repeatable)")
	fl.StringArrayVar(&cfg.ServerArgs, "server-arg", nil, "extra flag of every server, e.g. --server-arg=--metrics-addr=:9100 (repeatable)")
	fl.StringArrayVar(&cfg.AgentArgs, "agent-arg", nil, "extra flag of every agent, e.g. --agent-arg=--proxy-mode=userspace (repeatable)")
	return cmd
}

func newLabDownCmd(o *options, f *labFlags) *cobra.Command {
	var keepLogs bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop a lab and remove everything it created",
		Long: `Kill the lab's processes and its pods, and remove its network namespaces,
cgroups, eBPF pins, mounts, containerd state and directory.`,
		Example: `  skiff lab down
  skiff lab down --name small --keep-logs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := f.open(o)
			if err != nil {
				return err
			}
			if err := l.Down(keepLogs); err != nil {
				return err
			}
			fmt.Fprintf(o.out, "lab %s removed\n", l.Name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&keepLogs, "keep-logs", false, "keep the log directory")
	return cmd
}

func newLabStatusCmd(o *options, f *labFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "status",
		Short:   "Show a lab's machines: daemon, cable, Raft role or node condition",
		Example: `  skiff lab status`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := f.open(o)
			if err != nil {
				return err
			}
			ctx, cancel := o.requestContext(cmd.Context())
			defer cancel()
			rows := [][]string{{"MACHINE", "ROLE", "ADDRESS", "DAEMON", "CABLE", "STATUS"}}
			for _, s := range l.Status(ctx) {
				daemon := fmt.Sprintf("running (pid %d)", s.Machine.Proc.PID)
				if !s.Running {
					daemon = "stopped"
				}
				cable := "connected"
				if s.Cut {
					cable = "cut"
				}
				rows = append(rows, []string{s.Machine.Name, string(s.Machine.Role), s.Machine.IP.String(), daemon, cable, orNone(s.Detail)})
			}
			(&table{w: o.out}).add(rows...)
			fmt.Fprintf(o.out, "\nadmin config: %s\nlogs: %s\n", l.AdminConfig(), l.LogDir)
			return nil
		},
	}
}

func newLabExecCmd(o *options, f *labFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "exec MACHINE -- COMMAND [ARGS...]",
		Short: "Run a command inside a lab machine's network namespace",
		Example: `  skiff lab exec n1 -- ip addr
  skiff lab exec n2 -- ping -c1 10.250.0.101`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := f.open(o)
			if err != nil {
				return err
			}
			c, err := l.Command(cmd.Context(), args[0], args[1:]...)
			if err != nil {
				return err
			}
			c.Stdin, c.Stdout, c.Stderr = o.in, o.out, o.errOut
			err = c.Run()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return &ExitCodeError{Code: exit.ExitCode()}
			}
			return err
		},
	}
}

func newLabFaultCmd(o *options, f *labFlags, verb, short string, do func(*lab.Lab, string) error) *cobra.Command {
	return &cobra.Command{
		Use:     verb + " MACHINE...",
		Short:   short,
		Example: fmt.Sprintf("  skiff lab %s n1\n  skiff lab %s s1 s2", verb, verb),
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := f.open(o)
			if err != nil {
				return err
			}
			for _, m := range args {
				if err := do(l, m); err != nil {
					return err
				}
				fmt.Fprintf(o.out, "%s: %s\n", m, verb)
			}
			return nil
		},
	}
}

func newLabDropCmd(o *options, f *labFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "drop MACHINE PERCENT",
		Short: "Make a machine lose a share of its packets, both ways (0 stops it)",
		Long: `Drop PERCENT of the packets a machine sends and receives on its LAN link, at
random, with a tc BPF program on its eth0 (this kernel has no netem). The
setting stays until "skiff lab drop MACHINE 0" or "skiff lab down".`,
		Example: `  skiff lab drop n2 30     # n2 loses 30% of its packets
  skiff lab drop n2 0      # and no more`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pct, err := strconv.ParseFloat(strings.TrimSuffix(args[1], "%"), 64)
			if err != nil || pct < 0 || pct > 100 {
				return fmt.Errorf("percent %q: want a number from 0 to 100", args[1])
			}
			l, err := f.open(o)
			if err != nil {
				return err
			}
			if err := l.Drop(args[0], pct/100); err != nil {
				return err
			}
			fmt.Fprintf(o.out, "%s: dropping %g%% of its packets\n", args[0], pct)
			return nil
		},
	}
}

func newLabForwardCmd(o *options) *cobra.Command {
	var netns string
	cmd := &cobra.Command{
		Use:    "forward --netns LAN LISTEN=TARGET...",
		Short:  "Relay loopback ports to addresses in a lab's LAN (lab up starts it)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var fw []lab.Forward
			for _, a := range args {
				f, err := lab.ParseForward(a)
				if err != nil {
					return err
				}
				fw = append(fw, f)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return lab.RunForwarder(ctx, netns, fw, slog.New(slog.NewTextHandler(o.errOut, nil)))
		},
	}
	cmd.Flags().StringVar(&netns, "netns", "", "the LAN's network namespace (required)")
	cmd.MarkFlagRequired("netns")
	return cmd
}
