// Command fleetctl is the inferfleet CLI: it runs the built-in local fleet, renders what
// the hub would apply, and runs failover drills.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "fleetctl",
		Short:         "Serve one model across a fleet of Kubernetes clusters",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newUpCmd(), newDownCmd(), newRenderCmd(), newDemoCmd(), newDrillCmd(), newStatusCmd(), newClustersCmd())
	return root
}
