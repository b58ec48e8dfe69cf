package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/inferfleet/inferfleet/internal/localfleet"
	"github.com/inferfleet/inferfleet/internal/repo"
)

// memberRegions are the regions of members beyond the first two, in order; more members
// than regions reuse them.
var memberRegions = []string{"europe-west3", "us-east4", "us-central1", "asia-east1", "europe-west4",
	"us-west1", "asia-northeast1", "southamerica-east1"}

// localMembers names the first two members like the clusters of GKE's multi-cluster
// Inference Gateway guide (gke-west, gke-east) and the rest member-3, member-4, ...
func localMembers(n int) []localfleet.ClusterSpec {
	var specs []localfleet.ClusterSpec
	for i := range n {
		name := fmt.Sprintf("member-%d", i+1)
		switch i {
		case 0:
			name = "gke-west"
		case 1:
			name = "gke-east"
		}
		specs = append(specs, localfleet.DefaultMember(name, memberRegions[i%len(memberRegions)]))
	}
	return specs
}

func newUpCmd() *cobra.Command {
	var (
		dir     string
		members int
		detach  bool
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the local fleet: a hub and member clusters as processes on 127.0.0.1",
		Long: `Start the local fleet: a hub (etcd + kube-apiserver) and member clusters (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok with fake H100 and TPU v5e
nodes), each member registered in the hub. Needs the binaries from 'make bins'.

Without --detach it runs until Ctrl-C and then tears everything down; with --detach it
returns and leaves the fleet running until 'fleetctl down'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if members < 0 {
				return fmt.Errorf("--members must be 0 or more, got %d", members)
			}
			var dirs []string
			if root, err := repo.Root(); err == nil {
				dirs = repo.CRDDirs(root)
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v; starting without CRDs\n", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			f, err := localfleet.Start(ctx, localfleet.Options{
				Dir:           dir,
				Members:       localMembers(members),
				HubCRDDirs:    dirs,
				MemberCRDDirs: dirs,
				Log:           cmd.ErrOrStderr(),
				Detach:        detach,
			})
			if err != nil {
				return err
			}
			printUsage(cmd, f, detach)
			if detach {
				return nil
			}
			<-ctx.Done()
			fmt.Fprintln(cmd.ErrOrStderr(), "stopping the local fleet...")
			return f.Stop()
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".fleet", "state directory: certificates, etcd data, kubeconfigs, logs")
	cmd.Flags().IntVar(&members, "members", 2, "number of member clusters (gke-west, gke-east, member-3, ...)")
	cmd.Flags().BoolVar(&detach, "detach", false, "leave the fleet running in the background and return")
	return cmd
}

func printUsage(cmd *cobra.Command, f *localfleet.Fleet, detach bool) {
	out := cmd.OutOrStdout()
	var paths []string
	fmt.Fprintln(out, "Local fleet is up:")
	for _, c := range f.Clusters() {
		role := "member, region " + c.Region
		if c.IsHub() {
			role = "hub"
		}
		fmt.Fprintf(out, "  %-10s %-28s %s (%s)\n", c.Name, c.Server, c.KubeconfigPath, role)
		paths = append(paths, c.KubeconfigPath)
	}
	fmt.Fprintf(out, "\nUse it with:\n  export KUBECONFIG=%s\n", strings.Join(paths, string(os.PathListSeparator)))
	fmt.Fprintf(out, "  kubectl --context %s get secrets -n inferfleet-system\n", f.Hub.Name)
	if len(f.Members) > 0 {
		fmt.Fprintf(out, "  kubectl --context %s get nodes -L cloud.google.com/gke-accelerator\n", f.Members[0].Name)
	}
	fmt.Fprintf(out, "Logs are in %s.\n", filepath.Join(f.Dir, "logs"))
	if detach {
		fmt.Fprintf(out, "Stop it with: fleetctl down --dir %s\n", f.Dir)
	} else {
		fmt.Fprintln(out, "Press Ctrl-C to stop it.")
	}
}

func newDownCmd() *cobra.Command {
	var (
		dir   string
		purge bool
	)
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop a local fleet started with 'fleetctl up --detach'",
		Long: `Stop every process of the local fleet recorded in DIR/fleet.json. Certificates, etcd
data and kubeconfigs stay, so 'fleetctl up' in the same DIR brings the same clusters back;
--purge removes DIR as well.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := localfleet.StopFromState(dir)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				fmt.Fprintf(cmd.ErrOrStderr(), "no local fleet recorded in %s\n", dir)
			case err != nil:
				return err
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "local fleet in %s stopped\n", dir)
			}
			if purge {
				if err := os.RemoveAll(dir); err != nil {
					return fmt.Errorf("purge %s: %w", dir, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", dir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".fleet", "state directory of the fleet")
	cmd.Flags().BoolVar(&purge, "purge", false, "also remove the state directory")
	return cmd
}
