package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/internal/version"
)

// versions is `fleetctl version -o json|yaml`, shaped like kubectl's.
type versions struct {
	ClientVersion version.Info `json:"clientVersion"`
	// HubKubernetesVersion is the hub's API server version (gitVersion).
	HubKubernetesVersion string `json:"hubKubernetesVersion,omitempty"`
}

func newVersionCmd(kf *kubeFlags) *cobra.Command {
	var (
		clientOnly bool
		output     string
	)
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print fleetctl's version and build, and the hub's Kubernetes version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" && output != "yaml" {
				return fmt.Errorf("--output must be json or yaml, not %q", output)
			}
			v := versions{ClientVersion: version.Get()}
			var hubErr error
			if !clientOnly {
				hubErr = func() error {
					cfg, err := kf.restConfig()
					if err != nil {
						return err
					}
					dc, err := discovery.NewDiscoveryClientForConfig(cfg)
					if err != nil {
						return err
					}
					sv, err := dc.ServerVersion()
					if err != nil {
						return kf.hubError(err)
					}
					v.HubKubernetesVersion = sv.GitVersion
					return nil
				}()
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				b, err := json.MarshalIndent(v, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintln(out, string(b))
			case "yaml":
				b, err := yaml.Marshal(v)
				if err != nil {
					return err
				}
				fmt.Fprint(out, string(b))
			default:
				fmt.Fprintf(out, "Client Version: %s\n", v.ClientVersion)
				if v.HubKubernetesVersion != "" {
					fmt.Fprintf(out, "Hub Kubernetes Version: %s\n", v.HubKubernetesVersion)
				}
			}
			return hubErr
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "fleetctl's version only; do not contact the hub")
	cmd.Flags().StringVarP(&output, "output", "o", "", "json or yaml")
	return cmd
}
