package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
)

func newStatusCmd() *cobra.Command {
	var (
		hub    hubFlags
		output string
		watch  bool
		ns     string
	)
	cmd := &cobra.Command{
		Use:   "status [NAMESPACE/NAME]",
		Short: "Show each service's state in every cluster: region, health, desired/ready, exported, last sync",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o must be table or json, not %q", output)
			}
			c, err := hub.client()
			if err != nil {
				return err
			}
			for {
				svcs, err := listServices(cmd.Context(), c, ns, args)
				if err != nil {
					return err
				}
				if output == "json" {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					if err := enc.Encode(svcs); err != nil {
						return err
					}
				} else {
					writeStatusTable(cmd.OutOrStdout(), svcs, time.Now())
				}
				if !watch {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(2 * time.Second):
					fmt.Fprintln(cmd.OutOrStdout())
				}
			}
		},
	}
	hub.bind(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print again every 2s until Ctrl-C")
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "only this namespace (default: all)")
	return cmd
}

// listServices returns one service (NAMESPACE/NAME) or all of them, sorted.
func listServices(ctx context.Context, c client.Client, ns string, args []string) ([]v1alpha1.FleetInferenceService, error) {
	if len(args) == 1 {
		parts := strings.SplitN(args[0], "/", 2)
		key := client.ObjectKey{Namespace: "default", Name: parts[0]}
		if len(parts) == 2 {
			key = client.ObjectKey{Namespace: parts[0], Name: parts[1]}
		}
		svc := v1alpha1.FleetInferenceService{}
		if err := c.Get(ctx, key, &svc); err != nil {
			return nil, err
		}
		return []v1alpha1.FleetInferenceService{svc}, nil
	}
	var list v1alpha1.FleetInferenceServiceList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool {
		return list.Items[i].Namespace+"/"+list.Items[i].Name < list.Items[j].Namespace+"/"+list.Items[j].Name
	})
	return list.Items, nil
}

func since(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// writeStatusTable prints one block per service: its summary, then a line per cluster,
// then the conditions that are not as they should be.
func writeStatusTable(w io.Writer, svcs []v1alpha1.FleetInferenceService, now time.Time) {
	if len(svcs) == 0 {
		fmt.Fprintln(w, "No FleetInferenceServices found.")
		return
	}
	for i := range svcs {
		svc := &svcs[i]
		if i > 0 {
			fmt.Fprintln(w)
		}
		ready := "Unknown"
		if c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionReady); c != nil {
			ready = string(c.Status)
		}
		fmt.Fprintf(w, "%s/%s  ready=%s  replicas=%s  clusters=%s  gateway=%s\n", svc.Namespace, svc.Name, ready,
			orDash(svc.Status.ReplicasReady), orDash(svc.Status.ClustersReady), svc.Spec.Gateway.Name)
		if a := svc.Status.Autoscaling; a != nil {
			fmt.Fprintf(w, "  autoscaling: %d (recommended %d) %s: %s\n", a.DesiredReplicas, a.RecommendedReplicas, a.Reason, a.Message)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  CLUSTER\tREGION\tHEALTH\tREADY/DESIRED\tEXPORTED\tLAST SYNC\tMESSAGE")
		for _, c := range svc.Status.Clusters {
			health := orDash(string(c.Health))
			if c.FailedOver {
				health += " (failed over)"
			}
			last := time.Time{}
			if c.LastSyncTime != nil {
				last = c.LastSyncTime.Time
			}
			msg := c.Message
			if c.ScaledBy != "" {
				msg = strings.TrimPrefix(msg+"; replicas set by "+c.ScaledBy, "; ")
			}
			if d, ok := svc.Status.Placement.Decision(c.Name); ok && d.Spilled > 0 {
				msg = strings.TrimPrefix(fmt.Sprintf("%s; out of capacity: %d spilled to other clusters", msg, d.Spilled), "; ")
			} else if ok && d.Borrowed > 0 {
				msg = strings.TrimPrefix(fmt.Sprintf("%s; %d borrowed from clusters out of capacity", msg, d.Borrowed), "; ")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d/%d\t%t\t%s\t%s\n", c.Name, orDash(c.Region), health, c.ReadyReplicas, c.DesiredReplicas, c.Exported, since(last, now), msg)
		}
		tw.Flush()
		for _, c := range svc.Status.Conditions {
			healthy := (c.Type == v1alpha1.ConditionDegraded || c.Type == v1alpha1.ConditionFailingOver) == (c.Status != "True")
			if !healthy {
				fmt.Fprintf(w, "  %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
			}
		}
	}
}

func newClustersCmd() *cobra.Command {
	var (
		hub    hubFlags
		output string
		ns     string
	)
	cmd := &cobra.Command{
		Use:   "clusters",
		Short: "List the member clusters the hub discovered, with region, labels and reachability",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := hub.client()
			if err != nil {
				return err
			}
			var secrets corev1.SecretList
			if err := c.List(cmd.Context(), &secrets, client.InNamespace(ns)); err != nil {
				return err
			}
			rows := clusterRows(secrets.Items)
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			writeClusterTable(cmd.OutOrStdout(), rows, time.Now())
			return nil
		},
	}
	hub.bind(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().StringVar(&ns, "cluster-namespace", fleet.RegistrationNamespace, "namespace of the registration Secrets")
	return cmd
}

// clusterRow is one discovered cluster as fleetctl shows it.
type clusterRow struct {
	fleet.Cluster
	// Source is where the cluster came from: kubeconfig (a Secret someone wrote), kind or
	// gkehub.
	Source    string    `json:"source"`
	Reachable string    `json:"reachable"`
	Since     time.Time `json:"since,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

func clusterRows(secrets []corev1.Secret) []clusterRow {
	var rows []clusterRow
	for i := range secrets {
		s := &secrets[i]
		if !fleet.IsRegistration(s.Labels) {
			continue
		}
		r := clusterRow{Cluster: fleet.ClusterFromSecret(s), Source: s.Labels[fleet.SourceLabel], Reachable: "unknown"}
		if r.Source == "" {
			r.Source = "kubeconfig"
		}
		if v, ok := s.Annotations[fleet.AnnotationReachable]; ok {
			r.Reachable = v
			r.Since, _ = time.Parse(time.RFC3339, s.Annotations[fleet.AnnotationReachableSince])
			r.Reason = s.Annotations[fleet.AnnotationReachReason]
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	return rows
}

func writeClusterTable(w io.Writer, rows []clusterRow, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tSOURCE\tREGION\tREACHABLE\tSINCE\tCORDONED\tLABELS\tREASON")
	for _, r := range rows {
		var labels []string
		for k, v := range r.Labels {
			if k != fleet.RegionLabel {
				labels = append(labels, k+"="+v)
			}
		}
		sort.Strings(labels)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\n", r.Name, r.Source, orDash(r.Region), r.Reachable, since(r.Since, now), r.Cordoned, orDash(strings.Join(labels, ",")), r.Reason)
	}
	tw.Flush()
}
