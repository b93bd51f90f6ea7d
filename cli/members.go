package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

func newMembersCmd(o *options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the control-plane servers and their Raft roles",
		Long: `List the servers of the control plane as the answering server sees them: Raft
ID, addresses, suffrage (Voter or Nonvoter) and which one leads, then that
server's last log index and applied index.`,
		Example: `  skiff members
  skiff members -o json
  skiff members --server https://10.0.0.2:6443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := o.requestContext(cmd.Context())
			defer cancel()
			m, err := c.Members(ctx)
			if err != nil {
				return err
			}
			switch output {
			case "json":
				return printJSON(o.out, m)
			case "yaml":
				return printYAML(o.out, m)
			case "":
			default:
				return fmt.Errorf("unknown output format %q: want json or yaml", output)
			}
			rows := [][]string{{"ID", "RAFT-ADDRESS", "API-ADDRESS", "SUFFRAGE", "LEADER"}}
			for _, mem := range m.Members {
				leader := ""
				if mem.Leader {
					leader = "*"
				}
				rows = append(rows, []string{mem.ID, mem.RaftAddr, orNone(mem.APIAddr), mem.Suffrage, leader})
			}
			(&table{w: o.out}).add(rows...)
			fmt.Fprintf(o.out, "\nlast index %d, applied %d (as seen by %s)\n", m.LastIndex, m.AppliedIndex, orDefault(m.Server, "the answering server"))
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}

func newVersionCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version of this binary",
		Example: `  skiff version`,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(o.out, "skiff %s (commit %s, built %s, %s, %s/%s)\n",
				orDefault(o.build.Version, "dev"), orDefault(o.build.Commit, "unknown"), orDefault(o.build.Date, "unknown"),
				runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
