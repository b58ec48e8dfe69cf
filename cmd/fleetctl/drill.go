package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers"
)

type drillOptions struct {
	cluster, service, namespace string
	timeout                     time.Duration
	hub                         *kubeFlags
}

func newDrillCmd(kf *kubeFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Rehearse failovers on a running fleet",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newDrillRegionCmd(kf))
	return cmd
}

func newDrillRegionCmd(kf *kubeFlags) *cobra.Command {
	o := drillOptions{hub: kf}
	cmd := &cobra.Command{
		Use:   "region",
		Short: "Take one cluster (a region) out of placement, wait for recovery and failback, and report the times",
		Long: `region creates a FailoverDrill in the hub: the hub cordons the cluster on every
FleetInferenceService in the namespace that runs replicas there (or on --service only),
waits until the other clusters carry the replicas ready, puts the cluster back and waits
until it carries its share ready again. fleetctl follows the drill, prints each phase and
ends with a report; it exits non-zero when the drill failed. Ctrl-C deletes the drill,
which removes its cordon.`,
		Example: `  fleetctl drill region --cluster gke-west --namespace serving
  fleetctl drill region --cluster gke-east --service serving/llama --timeout 10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, err := kf.namespace()
			if err != nil {
				return err
			}
			o.namespace = ns
			return drillRegion(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, cmd.Flags().Changed("namespace"))
		},
	}
	cmd.Flags().StringVar(&o.cluster, "cluster", "", "member cluster to take out (required)")
	cmd.Flags().StringVar(&o.service, "service", "", "drill only this FleetInferenceService, as NAME or NAMESPACE/NAME")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound of each half of the drill (recovery, then failback)")
	_ = cmd.MarkFlagRequired("cluster")
	return cmd
}

// drillRegion creates the drill of `drill region`, prints its progress and its report.
func drillRegion(ctx context.Context, out, errOut io.Writer, o drillOptions, namespaceSet bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if ns, name, ok := strings.Cut(o.service, "/"); ok {
		if namespaceSet && ns != o.namespace {
			return fmt.Errorf("--service %s is in namespace %s, but --namespace says %s", o.service, ns, o.namespace)
		}
		o.namespace, o.service = ns, name
	}
	c, err := o.hub.client()
	if err != nil {
		return err
	}
	drill := &v1alpha1.FailoverDrill{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "drill-" + o.cluster + "-", Namespace: o.namespace},
		Spec:       v1alpha1.FailoverDrillSpec{Cluster: o.cluster, Service: o.service, Timeout: &metav1.Duration{Duration: o.timeout}},
	}

	// Each half is bounded by the hub; the margin covers a hub that is slow to pick it up.
	sig, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	wait, cancel := context.WithTimeout(sig, 2*o.timeout+time.Minute)
	defer cancel()

	start := time.Now()
	p := &drillPrinter{out: out, start: start}
	final, err := runDrill(wait, c, drill, p.progress)
	switch {
	case final == nil:
		return o.hub.hubError(err)
	case errors.Is(err, errDrillFailed), err == nil:
		writeDrillReport(out, final)
		return err
	case sig.Err() != nil:
		// Interrupted: deleting the drill makes the hub remove its cordon.
		fmt.Fprintf(errOut, "interrupted: deleting drill %s so the hub removes its cordon\n", final.Name)
		dctx, dcancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer dcancel()
		if derr := c.Delete(dctx, final); derr != nil && !apierrors.IsNotFound(derr) {
			return fmt.Errorf("%w; deleting the drill failed too: %v (delete %s/%s by hand)", err, derr, final.Namespace, final.Name)
		}
		return err
	default:
		if final.Status.Phase == "" {
			return fmt.Errorf("%w: the drill never started: is the hub running with the failover-drill controller?", err)
		}
		writeDrillReport(out, final)
		return fmt.Errorf("%w: the drill is still running (kubectl delete failoverdrill -n %s %s aborts it)", err, final.Namespace, final.Name)
	}
}

// runDrill creates drill and follows it until it finishes, calling progress (if not nil)
// with the created drill (no phase yet), then each time its phase changes. It returns the
// finished drill; when it Failed, the error wraps errDrillFailed and carries the drill's
// message. If ctx ends
// first it returns ctx's error and the last drill seen: the drill keeps running, and
// deleting it aborts it (its finalizer removes the cordon).
func runDrill(ctx context.Context, c client.Client, drill *v1alpha1.FailoverDrill, progress func(*v1alpha1.FailoverDrill)) (*v1alpha1.FailoverDrill, error) {
	if err := c.Create(ctx, drill); err != nil {
		return nil, fmt.Errorf("create drill: %w", err)
	}
	key := client.ObjectKeyFromObject(drill)
	last := drill.DeepCopy()
	var seen v1alpha1.DrillPhase
	if progress != nil {
		progress(last.DeepCopy())
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("drill %s did not finish: %w", key.Name, ctx.Err())
		case <-tick.C:
		}
		cur := &v1alpha1.FailoverDrill{}
		if err := c.Get(ctx, key, cur); err != nil {
			if apierrors.IsNotFound(err) {
				return last, fmt.Errorf("drill %s was deleted before it finished", key.Name)
			}
			continue // transient, or ctx ending: the select decides
		}
		last = cur
		if cur.Status.Phase != seen && cur.Status.Phase != "" {
			seen = cur.Status.Phase
			if progress != nil {
				progress(cur.DeepCopy())
			}
		}
		switch cur.Status.Phase {
		case v1alpha1.DrillSucceeded:
			return cur, nil
		case v1alpha1.DrillFailed:
			return cur, fmt.Errorf("%w: %s", errDrillFailed, cur.Status.Message)
		}
	}
}

// errDrillFailed is wrapped by runDrill's error when the drill ended Failed.
var errDrillFailed = errors.New("failover drill failed")

// drillPrinter prints each phase as runDrill reports it, with the time since the start.
type drillPrinter struct {
	out       io.Writer
	start     time.Time
	recovered bool
}

func (p *drillPrinter) progress(d *v1alpha1.FailoverDrill) {
	elapsed := fmt.Sprintf("+%s", time.Since(p.start).Round(100*time.Millisecond))
	switch d.Status.Phase {
	case "":
		target := "every service in " + d.Namespace + " placed on it"
		if d.Spec.Service != "" {
			target = d.Namespace + "/" + d.Spec.Service
		}
		timeout := controllers.DefaultDrillTimeout
		if d.Spec.Timeout != nil {
			timeout = d.Spec.Timeout.Duration
		}
		fmt.Fprintf(p.out, "drill %s: taking %s out of placement for %s (timeout %s per half)\n", d.Name, d.Spec.Cluster, target, timeout)
		fmt.Fprintf(p.out, "  %-8s %s\n", elapsed, v1alpha1.DrillPending)
		return
	case v1alpha1.DrillDraining:
		var names []string
		for _, s := range d.Status.Services {
			names = append(names, s.Name)
		}
		fmt.Fprintf(p.out, "  %-8s %-10s %s cordoned on %s\n", elapsed, d.Status.Phase, d.Spec.Cluster, strings.Join(names, ", "))
		return
	}
	// Recovered lasts a moment: a poll may see Restoring first, so the recovery is printed
	// with whichever comes first.
	if d.Status.TimeToRecover != nil && !p.recovered {
		p.recovered = true
		fmt.Fprintf(p.out, "  %-8s %-10s the other clusters carry the replicas (time to recover %s)\n", elapsed, v1alpha1.DrillRecovered, durationText(d.Status.TimeToRecover))
		if d.Status.Phase == v1alpha1.DrillRecovered {
			return
		}
	}
	switch d.Status.Phase {
	case v1alpha1.DrillRestoring:
		fmt.Fprintf(p.out, "  %-8s %-10s %s back in placement, waiting for its share to be ready\n", elapsed, d.Status.Phase, d.Spec.Cluster)
	case v1alpha1.DrillSucceeded:
		fmt.Fprintf(p.out, "  %-8s %-10s %s carries its share again (time to failback %s)\n", elapsed, d.Status.Phase, d.Spec.Cluster, durationText(d.Status.TimeToFailback))
	default: // Failed: the report says why.
		fmt.Fprintf(p.out, "  %-8s %s\n", elapsed, d.Status.Phase)
	}
}

// writeDrillReport prints what the drill moved and how long each half took.
func writeDrillReport(out io.Writer, d *v1alpha1.FailoverDrill) {
	fmt.Fprintf(out, "\nFailover drill %s/%s: cluster %s, %s\n", d.Namespace, d.Name, d.Spec.Cluster, d.Status.Phase)
	if len(d.Status.Services) > 0 {
		tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
		fmt.Fprintln(tw, "  SERVICE\tBEFORE\tDURING")
		for _, s := range d.Status.Services {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Name, sharesText(s.Before), sharesText(s.During))
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(out, "  Time to recover:  %s\n", durationText(d.Status.TimeToRecover))
	fmt.Fprintf(out, "  Time to failback: %s\n", durationText(d.Status.TimeToFailback))
	if d.Status.Message != "" {
		fmt.Fprintf(out, "  Note: %s\n", d.Status.Message)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sharesText is a report's shares as "east=3 west=3", "-" when there are none.
func sharesText(shares []v1alpha1.DrillClusterShare) string {
	var parts []string
	for _, sh := range shares {
		parts = append(parts, fmt.Sprintf("%s=%d", sh.Cluster, sh.Replicas))
	}
	return orDash(strings.Join(parts, " "))
}

// durationText is a time of the report, "-" when there is none.
func durationText(d *metav1.Duration) string {
	if d == nil {
		return "-"
	}
	return d.Duration.String()
}
