// Command fleetctl is the inferfleet CLI: it runs the built-in local fleet, renders what
// the hub would apply, and runs failover drills.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
	// Installed as kubectl-fleet, kubectl runs it as `kubectl fleet`: help says so.
	if strings.HasPrefix(filepath.Base(os.Args[0]), "kubectl-") {
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl fleet"}
	}
	kf := newKubeFlags()
	kf.addFlags(root.PersistentFlags())
	root.AddCommand(newUpCmd(), newDownCmd(), newRenderCmd(kf), newDemoCmd(), newDrillCmd(kf), newStatusCmd(kf), newClustersCmd(kf),
		newVersionCmd(kf), newClusterCmd(kf))
	return root
}
