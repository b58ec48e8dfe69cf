package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	watchtools "k8s.io/client-go/tools/watch"
	cpv1alpha1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
)

func newStatusCmd(kf *kubeFlags) *cobra.Command {
	pf := newPrintFlags()
	var watching, all bool
	cmd := &cobra.Command{
		Use:   "status [NAME | NAMESPACE/NAME]",
		Short: "Show each service's state in every cluster: region, health, desired/ready, exported, last sync",
		Example: `  fleetctl status -n serving
  fleetctl status -A -o wide
  fleetctl status serving/llama -w
  fleetctl status llama -o jsonpath='{.status.replicasReady}'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := pf.validate(); err != nil {
				return err
			}
			ns, name, err := serviceScope(kf, cmd, args, all)
			if err != nil {
				return err
			}
			c, err := kf.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if watching {
				return kf.hubError(watchServices(cmd.Context(), c, ns, name, func(ev watch.EventType, svc *v1alpha1.FleetInferenceService) error {
					switch {
					case ev == watch.Deleted && pf.human():
						_, err := fmt.Fprintf(out, "%s/%s deleted\n\n", svc.Namespace, svc.Name)
						return err
					case pf.human():
						writeStatusTable(out, []v1alpha1.FleetInferenceService{*svc}, time.Now(), pf.wide())
						_, err := fmt.Fprintln(out)
						return err
					default:
						return pf.print(out, []runtime.Object{svc}, true)
					}
				}))
			}
			svcs, err := listServices(cmd.Context(), c, ns, name)
			if err != nil {
				return kf.hubError(err)
			}
			if pf.human() {
				if len(svcs) == 0 {
					return noneFound(out, "FleetInferenceServices", ns)
				}
				writeStatusTable(out, svcs, time.Now(), pf.wide())
				return nil
			}
			objs := make([]runtime.Object, len(svcs))
			for i := range svcs {
				objs[i] = &svcs[i]
			}
			return pf.print(out, objs, name != "")
		},
	}
	pf.addFlags(cmd, "one block per service, a line per cluster")
	cmd.Flags().BoolVarP(&watching, "watch", "w", false, "after the first listing, print each service again as it changes (a watch), until Ctrl-C")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "services in every namespace")
	return cmd
}

// serviceScope is the namespace and name a `status` (or any per-service command) is about:
// NAMESPACE/NAME, or NAME in -n (default the context's namespace), or everything in -n;
// -A means every namespace.
func serviceScope(kf *kubeFlags, cmd *cobra.Command, args []string, all bool) (ns, name string, err error) {
	nsSet := cmd.Flags().Changed("namespace")
	if all && nsSet {
		return "", "", fmt.Errorf("-A and -n exclude each other")
	}
	if len(args) == 1 {
		if all {
			return "", "", fmt.Errorf("a service cannot be looked up by name across all namespaces: drop -A or name NAMESPACE/NAME")
		}
		if n, rest, ok := strings.Cut(args[0], "/"); ok {
			if nsSet && n != *kf.Namespace {
				return "", "", fmt.Errorf("%s is in namespace %s, but -n says %s", args[0], n, *kf.Namespace)
			}
			return n, rest, nil
		}
		name = args[0]
	}
	if all {
		return "", "", nil
	}
	ns, err = kf.namespace()
	return ns, name, err
}

// noneFound prints kubectl's message for an empty listing.
func noneFound(w io.Writer, what, ns string) error {
	if ns == "" {
		_, err := fmt.Fprintf(w, "No %s found.\n", what)
		return err
	}
	_, err := fmt.Fprintf(w, "No %s found in %s namespace.\n", what, ns)
	return err
}

// listServices returns one service (name set) or all of them in ns ("" is every
// namespace), sorted.
func listServices(ctx context.Context, c client.Client, ns, name string) ([]v1alpha1.FleetInferenceService, error) {
	if name != "" {
		svc := v1alpha1.FleetInferenceService{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
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

// watchServices lists the services in ns (one if name is set), then watches them: f is
// called for each as listed, then for each change, until ctx ends. It is client-go's
// UntilWithSync: an informer that re-lists and resumes the watch when it breaks.
func watchServices(ctx context.Context, c client.WithWatch, ns, name string, f func(watch.EventType, *v1alpha1.FleetInferenceService) error) error {
	scope := func(opts metav1.ListOptions) *client.ListOptions {
		if name != "" {
			opts.FieldSelector = "metadata.name=" + name
		}
		return &client.ListOptions{Namespace: ns, Raw: &opts}
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list := &v1alpha1.FleetInferenceServiceList{}
			return list, c.List(ctx, list, scope(opts))
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return c.Watch(ctx, &v1alpha1.FleetInferenceServiceList{}, scope(opts))
		},
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &v1alpha1.FleetInferenceService{}, nil, func(ev watch.Event) (bool, error) {
		svc, ok := ev.Object.(*v1alpha1.FleetInferenceService)
		if !ok {
			return false, nil
		}
		return false, f(ev.Type, svc)
	})
	if ctx.Err() != nil {
		return nil // Ctrl-C, or the caller's deadline: a watch ends that way
	}
	return err
}

func since(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// writeStatusTable prints one block per service: its summary, then a line per cluster,
// then the conditions that are not as they should be.
func writeStatusTable(w io.Writer, svcs []v1alpha1.FleetInferenceService, now time.Time, wide bool) {
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
		header := "  CLUSTER\tREGION\tHEALTH\tREADY/DESIRED\tEXPORTED\tLAST SYNC"
		if wide {
			header += "\tPLACEMENT\tPLACED SINCE"
		}
		fmt.Fprintln(tw, header+"\tMESSAGE")
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
			row := fmt.Sprintf("  %s\t%s\t%s\t%d/%d\t%t\t%s", c.Name, orDash(c.Region), health, c.ReadyReplicas, c.DesiredReplicas, c.Exported, since(last, now))
			if wide {
				d, _ := svc.Status.Placement.Decision(c.Name)
				placed := time.Time{}
				if d.Since != nil {
					placed = d.Since.Time
				}
				row += fmt.Sprintf("\t%s\t%s", orDash(string(d.Reason)), since(placed, now))
			}
			fmt.Fprintf(tw, "%s\t%s\n", row, msg)
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

func newClustersCmd(kf *kubeFlags) *cobra.Command {
	pf := newPrintFlags()
	var ns string
	cmd := &cobra.Command{
		Use:   "clusters [NAME...]",
		Short: "List the member clusters the hub discovered, with region, labels and reachability",
		Long: `clusters lists every member the hub knows, whatever its source (kubeconfig Secret,
fleetctl cluster join, GKE Hub, kind, ClusterProfile). -o json|yaml|name|jsonpath|go-template
print each member as a ClusterProfile (multicluster.x-k8s.io/v1alpha1, SIG Multicluster's
Cluster Inventory API): labels, the source as spec.clusterManager, reachability as the
ControlPlaneHealthy condition, the cordon as a property.`,
		Example: `  fleetctl clusters
  fleetctl clusters gke-west -o yaml
  fleetctl clusters -o jsonpath='{.items[*].metadata.name}'`,
		RunE: func(cmd *cobra.Command, names []string) error {
			if err := pf.validate(); err != nil {
				return err
			}
			c, err := kf.client()
			if err != nil {
				return err
			}
			var secrets corev1.SecretList
			if err := c.List(cmd.Context(), &secrets, client.InNamespace(ns)); err != nil {
				return kf.hubError(err)
			}
			rows, err := pickClusters(clusterRows(secrets.Items), names)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if pf.human() {
				if len(rows) == 0 {
					return noneFound(out, "member clusters", ns)
				}
				writeClusterTable(out, rows, time.Now(), pf.wide())
				return nil
			}
			objs := make([]runtime.Object, len(rows))
			for i := range rows {
				objs[i] = rows[i].profile()
			}
			return pf.print(out, objs, len(names) == 1)
		},
	}
	pf.addFlags(cmd, "a table")
	cmd.Flags().StringVar(&ns, "cluster-namespace", fleet.RegistrationNamespace, "namespace of the registration Secrets")
	return cmd
}

// pickClusters keeps the named rows, in the order named; no names keeps all.
func pickClusters(rows []clusterRow, names []string) ([]clusterRow, error) {
	if len(names) == 0 {
		return rows, nil
	}
	var out []clusterRow
	for _, n := range names {
		i := slices.IndexFunc(rows, func(r clusterRow) bool { return r.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("member cluster %q not found", n)
		}
		out = append(out, rows[i])
	}
	return out, nil
}

// clusterRow is one discovered cluster as fleetctl shows it.
type clusterRow struct {
	fleet.Cluster
	// Source is where the cluster came from: kubeconfig (a Secret someone wrote), kind or
	// gkehub.
	Source    string
	Namespace string
	Server    string
	Reachable string
	Since     time.Time
	Reason    string
	Cordon    string
}

// profile is the row as a ClusterProfile.
func (r clusterRow) profile() *cpv1alpha1.ClusterProfile {
	p := &cpv1alpha1.ClusterProfile{
		TypeMeta:   metav1.TypeMeta{APIVersion: cpv1alpha1.GroupVersion.String(), Kind: cpv1alpha1.ClusterProfileKind},
		ObjectMeta: metav1.ObjectMeta{Name: r.Name, Namespace: r.Namespace, Labels: maps.Clone(r.Labels)},
		Spec:       cpv1alpha1.ClusterProfileSpec{DisplayName: r.Name, ClusterManager: cpv1alpha1.ClusterManager{Name: r.Source}},
	}
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[cpv1alpha1.LabelClusterManagerKey] = r.Source
	cond := metav1.Condition{Type: cpv1alpha1.ClusterConditionControlPlaneHealthy, Status: metav1.ConditionUnknown, Reason: "NotProbed",
		Message: "the hub has not probed the cluster yet"}
	switch r.Reachable {
	case "true":
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "Reachable", "the hub reaches the API server"
	case "false":
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "Unreachable", r.Reason
	}
	cond.LastTransitionTime = metav1.NewTime(r.Since)
	p.Status.Conditions = []metav1.Condition{cond}
	if r.Cordoned {
		p.Status.Properties = append(p.Status.Properties, cpv1alpha1.Property{Name: fleet.CordonProperty, Value: orDash(r.Cordon)})
	}
	if r.Server != "" {
		p.Status.AccessProviders = []cpv1alpha1.AccessProvider{{Name: "inferfleet", Cluster: clientcmdv1.Cluster{Server: r.Server}}}
	}
	return p
}

func clusterRows(secrets []corev1.Secret) []clusterRow {
	var rows []clusterRow
	for i := range secrets {
		s := &secrets[i]
		if !fleet.IsRegistration(s.Labels) {
			continue
		}
		r := clusterRow{Cluster: fleet.ClusterFromSecret(s), Source: s.Labels[fleet.SourceLabel], Namespace: s.Namespace,
			Reachable: "unknown", Cordon: s.Annotations[fleet.AnnotationCordoned], Server: kubeconfigServer(s.Data[fleet.KubeconfigKey])}
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

// kubeconfigServer is the API server of a kubeconfig's current context, "" if there is
// none.
func kubeconfigServer(kubeconfig []byte) string {
	if len(kubeconfig) == 0 {
		return ""
	}
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return ""
	}
	if ctx := cfg.Contexts[cfg.CurrentContext]; ctx != nil && cfg.Clusters[ctx.Cluster] != nil {
		return cfg.Clusters[ctx.Cluster].Server
	}
	return ""
}

func writeClusterTable(w io.Writer, rows []clusterRow, now time.Time, wide bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "CLUSTER\tSOURCE\tREGION\tREACHABLE\tSINCE\tCORDONED\tLABELS\tREASON"
	if wide {
		header += "\tSERVER\tCORDON"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		var labels []string
		for k, v := range r.Labels {
			if k != fleet.RegionLabel {
				labels = append(labels, k+"="+v)
			}
		}
		sort.Strings(labels)
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s", r.Name, r.Source, orDash(r.Region), r.Reachable, since(r.Since, now), r.Cordoned, orDash(strings.Join(labels, ",")), r.Reason)
		if wide {
			row += fmt.Sprintf("\t%s\t%s", orDash(r.Server), orDash(r.Cordon))
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
}
