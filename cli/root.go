package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/nodeagent/runtime/containerd/logdriver"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

// BuildInfo identifies the binary; cmd/skiff sets it from -ldflags.
type BuildInfo struct {
	Version string
	Commit  string
	Date    string
}

// ErrReported is returned by a command that has already printed its
// errors (one per failed object, as kubectl does): main only sets the exit
// code.
var ErrReported = errors.New("errors reported above")

// options are the global flags and the process's streams.
type options struct {
	build          BuildInfo
	configPath     string
	server         string
	namespace      string
	requestTimeout time.Duration

	in     io.Reader
	out    io.Writer
	errOut io.Writer
	now    func() time.Time

	// newClient is replaced in tests.
	newClient func(cfg client.Config) (*client.Client, error)
}

// NewRoot builds the `skiff` command tree.
func NewRoot(build BuildInfo) *cobra.Command {
	o := &options{
		build:  build,
		in:     os.Stdin,
		out:    os.Stdout,
		errOut: os.Stderr,
		now:    time.Now,
	}
	o.newClient = func(cfg client.Config) (*client.Client, error) {
		return client.New(cfg, client.WithTimeout(o.requestTimeout))
	}
	return newRoot(o)
}

func newRoot(o *options) *cobra.Command {
	root := &cobra.Command{
		Use:   "skiff",
		Short: "skiff runs and drives a skiff cluster",
		Long: `skiff is a container orchestrator with the Kubernetes architecture in one small
binary: a Raft-replicated control plane, a scheduler and controllers, node
agents, and an eBPF service datapath. This one command runs every part of it
(skiff server, skiff dev) and drives it like kubectl (apply, get, describe,
delete).

Client commands find the cluster through --server, or the config file named by
--config, $SKIFF_CONFIG, or ~/.skiff/config (skiff dev and skiff server write
one to DATA_DIR/admin.conf).`,
		Example: `  # A one-process cluster for development, then use it from another terminal
  skiff dev
  export SKIFF_CONFIG=$HOME/.skiff/dev/admin.conf
  skiff apply -f examples/web.yaml
  skiff get deploy,svc`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(o.in)
	root.SetOut(o.out)
	root.SetErr(o.errOut)
	root.CompletionOptions.HiddenDefaultCmd = false

	pf := root.PersistentFlags()
	pf.StringVar(&o.configPath, "config", "", "client config file (default $SKIFF_CONFIG, else ~/.skiff/config)")
	pf.StringVar(&o.server, "server", "", "API server URL(s), e.g. https://127.0.0.1:6443 (replaces the config's servers; its credentials are kept)")
	pf.StringVarP(&o.namespace, "namespace", "n", "default", "namespace of the request")
	pf.DurationVar(&o.requestTimeout, "request-timeout", 30*time.Second, "how long to wait for one request (0: no limit)")

	root.AddGroup(
		&cobra.Group{ID: "basic", Title: "Working with objects:"},
		&cobra.Group{ID: "cluster", Title: "Running and inspecting a cluster:"},
	)
	for _, c := range []*cobra.Command{newApplyCmd(o), newGetCmd(o), newDescribeCmd(o), newDeleteCmd(o), newScaleCmd(o), newRolloutCmd(o), newLogsCmd(o), newExecCmd(o)} {
		c.GroupID = "basic"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newServerCmd(o), newDevCmd(o), newAgentCmd(o), newMembersCmd(o), newTokenCmd(o), newCordonCmd(o, true), newCordonCmd(o, false), newDrainCmd(o), newImageCmd(o), newLabCmd(o)} {
		c.GroupID = "cluster"
		root.AddCommand(c)
	}
	root.AddCommand(newVersionCmd(o))
	root.AddCommand(&cobra.Command{
		// containerd's shims run this to write a container's output to its
		// log file (the agent names this binary as the log driver).
		Use:                logdriver.Subcommand + " OPTIONS",
		Hidden:             true,
		DisableFlagParsing: true,
		Run:                func(_ *cobra.Command, args []string) { logdriver.Main(args) },
	})
	return root
}

// clientConfig resolves where the cluster is and who we are: the config
// file's servers and credentials, with --server replacing the servers (the
// credentials still come from the config, as with kubectl).
func (o *options) clientConfig() (client.Config, error) {
	cfg, err := o.loadConfig()
	if o.server == "" {
		return cfg, err
	}
	if err != nil && !errors.Is(err, errNoConfig) {
		return client.Config{}, err
	}
	var servers []string
	for _, s := range strings.Split(o.server, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !strings.Contains(s, "://") {
				s = "https://" + s
			}
			servers = append(servers, strings.TrimRight(s, "/"))
		}
	}
	cfg.APIVersion, cfg.Kind, cfg.Servers = "skiff/v1", "Config", servers
	return cfg, nil
}

// errNoConfig: no config file exists (fine with --server).
var errNoConfig = errors.New("no cluster configured")

func (o *options) loadConfig() (client.Config, error) {
	path, origin := o.configPath, "--config"
	if path == "" {
		if env := os.Getenv("SKIFF_CONFIG"); env != "" {
			path, origin = env, "$SKIFF_CONFIG"
		} else {
			path, origin = client.DefaultConfigPath(), "the default config"
		}
	}
	cfg, err := client.LoadConfig(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return client.Config{}, fmt.Errorf("%w: %s %s does not exist; "+
				"start one with `skiff dev` and `export SKIFF_CONFIG=$HOME/.skiff/dev/admin.conf`", errNoConfig, origin, path)
		}
		return client.Config{}, fmt.Errorf("load client config %s: %w", path, err)
	}
	if len(cfg.Servers) == 0 {
		return client.Config{}, fmt.Errorf("client config %s lists no servers", path)
	}
	return *cfg, nil
}

// client connects to the configured cluster.
func (o *options) client() (*client.Client, error) {
	cfg, err := o.clientConfig()
	if err != nil {
		return nil, err
	}
	return o.newClient(cfg)
}

// requestContext bounds one command's requests by --request-timeout.
func (o *options) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.requestTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, o.requestTimeout)
}

// resource resolves a resource name as kubectl spells it.
func resource(name string) (api.ResourceInfo, error) {
	info, ok := api.ByResource(name)
	if !ok {
		return api.ResourceInfo{}, fmt.Errorf("the server doesn't have a resource type %q", name)
	}
	return info, nil
}

// namespaceFor is the namespace a request about info uses: "" for
// cluster-scoped kinds.
func (o *options) namespaceFor(info api.ResourceInfo) string {
	if !info.Namespaced {
		return ""
	}
	return o.namespace
}

// statusOf returns the API error inside err, if any.
func statusOf(err error) (*api.Status, bool) {
	var s *api.Status
	if errors.As(err, &s) {
		return s, true
	}
	return nil, false
}

func hasReason(err error, reason api.StatusReason, code int) bool {
	s, ok := statusOf(err)
	return ok && (s.Reason == reason || (s.Reason == "" && s.Code == code))
}

func isNotFound(err error) bool { return hasReason(err, api.ReasonNotFound, http.StatusNotFound) }
func isAlreadyExists(err error) bool {
	return hasReason(err, api.ReasonAlreadyExists, http.StatusConflict)
}
func isConflict(err error) bool { return hasReason(err, api.ReasonConflict, http.StatusConflict) }

// reportError prints one per-object error as kubectl does:
// "Error from server (NotFound): deployments.apps "x" not found".
func (o *options) reportError(err error) {
	if s, ok := statusOf(err); ok && s.Reason != "" {
		fmt.Fprintf(o.errOut, "Error from server (%s): %s\n", s.Reason, s.Error())
		return
	}
	fmt.Fprintf(o.errOut, "error: %v\n", err)
}
