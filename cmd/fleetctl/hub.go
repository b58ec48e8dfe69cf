package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/cmd/hub/app"
)

// hubFlags are how every fleetctl command that talks to the hub reaches it.
type hubFlags struct{ kubeconfig, context string }

func (h *hubFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&h.kubeconfig, "kubeconfig", "", "kubeconfig of the hub: a file, or a path list merged like $KUBECONFIG (default $KUBECONFIG, then ~/.kube/config)")
	cmd.Flags().StringVar(&h.context, "context", "", "kubeconfig context of the hub (default: the current context)")
}

// loadingRules are client-go's kubeconfig loading rules for --kubeconfig: empty means the
// defaults ($KUBECONFIG, then ~/.kube/config); one path must exist; a path list is merged
// as kubectl merges $KUBECONFIG (the first file to set a value wins, missing files are
// skipped).
func (h *hubFlags) loadingRules() *clientcmd.ClientConfigLoadingRules {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	var paths []string
	for _, p := range filepath.SplitList(h.kubeconfig) {
		if p != "" {
			paths = append(paths, p)
		}
	}
	switch {
	case len(paths) > 1:
		rules.Precedence = paths
	case len(paths) == 1:
		rules.ExplicitPath = paths[0]
	}
	return rules
}

// restConfig is the hub's REST config from --kubeconfig and --context.
func (h *hubFlags) restConfig() (*rest.Config, error) {
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(h.loadingRules(),
		&clientcmd.ConfigOverrides{CurrentContext: h.context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("hub kubeconfig: %w", err)
	}
	return cfg, nil
}

// client is a client of the hub with the fleet's scheme.
func (h *hubFlags) client() (client.Client, error) {
	cfg, err := h.restConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: app.Scheme()})
	if err != nil {
		return nil, fmt.Errorf("hub client: %w", err)
	}
	return c, nil
}
