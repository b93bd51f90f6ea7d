package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/client"
)

func newTokenCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke join and access tokens",
		Long: `Tokens let servers and node agents join the cluster, and give users scoped
access to the API.

A join token (usage server or agent) has the form K10<sha256 of the cluster
CA>::<id>.<secret>: a joiner first fetches the CA, checks its hash against the
token and only then sends the secret. A user token (usage user) carries a
role (admin, edit or view), cluster-wide or in one namespace, and is used as
a bearer credential (the "token" of a client config). Secrets are stored
hashed and shown once, when created.`,
	}
	cmd.AddCommand(newTokenCreateCmd(o), newTokenListCmd(o), newTokenRevokeCmd(o))
	return cmd
}

func newTokenCreateCmd(o *options) *cobra.Command {
	var req client.TokenRequest
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a token and print it (the secret is shown only now)",
		Example: `  skiff token create --usage agent --ttl 24h      # lets node agents join for a day
  skiff token create --usage server               # lets another server join
  skiff token create --role view --namespace team-a --description "dashboards"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if req.Role != "" && req.Usage == "" {
				req.Usage = "user"
			}
			if req.Usage == "" {
				return fmt.Errorf("say what the token is for: --usage agent|server, or --role admin|edit|view for a user token")
			}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			if !cmd.Flags().Changed("namespace") {
				req.Namespace = ""
			} else {
				req.Namespace = o.namespace
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := o.requestContext(cmd.Context())
			defer cancel()
			t, err := c.CreateToken(ctx, req)
			if err != nil {
				return err
			}
			fmt.Fprintln(o.out, t.Token)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Usage, "usage", "", "what the token is for: server, agent or user (default user when --role is given)")
	f.StringVar(&req.Role, "role", "", "role of a user token: admin, edit or view")
	f.DurationVar(&ttl, "ttl", 0, "lifetime, e.g. 24h (default: no expiry)")
	f.StringVar(&req.Description, "description", "", "free text shown by token list")
	return cmd
}

func newTokenListCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List tokens (never their secrets)",
		Example: `  skiff token list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := o.requestContext(cmd.Context())
			defer cancel()
			ts, err := c.ListTokens(ctx)
			if err != nil {
				return err
			}
			rows := [][]string{{"ID", "USAGE", "ROLE", "NAMESPACE", "EXPIRES", "AGE", "DESCRIPTION"}}
			for _, t := range ts {
				exp := "<never>"
				if t.Expires != nil {
					if d := time.Until(*t.Expires); d > 0 {
						exp = "in " + humanDuration(d)
					} else {
						exp = "expired"
					}
				}
				rows = append(rows, []string{t.ID, t.Usage, orNone(t.Role), orNone(t.Namespace), exp, humanDuration(time.Since(t.Created)), t.Description})
			}
			(&table{w: o.out}).add(rows...)
			return nil
		},
	}
}

func newTokenRevokeCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "revoke ID...",
		Short:   "Revoke tokens: joins and requests using them fail from now on",
		Example: `  skiff token revoke abc123`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := o.requestContext(cmd.Context())
			defer cancel()
			for _, id := range args {
				if err := c.RevokeToken(ctx, id); err != nil {
					return err
				}
				fmt.Fprintf(o.out, "token %s revoked\n", id)
			}
			return nil
		},
	}
}
