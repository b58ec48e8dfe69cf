package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	mcbuilder "sigs.k8s.io/multicluster-runtime/pkg/builder"
	mchandler "sigs.k8s.io/multicluster-runtime/pkg/handler"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"
	mcreconcile "sigs.k8s.io/multicluster-runtime/pkg/reconcile"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

// DrillFinalizer holds a drill until the cordon it added is gone from every service.
const DrillFinalizer = "fleet.inferfleet.dev/drill"

// The drill's start and restore instants, to the nanosecond: status times are
// metav1.Time, which the API stores to the second, too coarse for a time to recover.
const (
	AnnotationDrillStarted  = "fleet.inferfleet.dev/drill-started"
	AnnotationDrillRestored = "fleet.inferfleet.dev/drill-restored"
)

// Reasons of the events a drill emits.
const (
	ReasonDrillStarted   = "DrillStarted"
	ReasonDrillRecovered = "DrillRecovered"
	ReasonDrillSucceeded = "DrillSucceeded"
	ReasonDrillFailed    = "DrillFailed"
	ReasonDrillAborted   = "DrillAborted"
)

// DefaultDrillTimeout bounds each half of a drill whose spec has no timeout.
const DefaultDrillTimeout = 5 * time.Minute

// drillPoll is how often a running drill re-checks its services besides their watch.
const drillPoll = time.Second

// DrillReconciler runs FailoverDrills: it cordons the drilled cluster on the services
// (the annotation MemberSync honours), waits for the other clusters to carry the
// replicas, removes the cordon, waits for failback, and reports both times.
type DrillReconciler struct {
	Hub      client.Client
	Recorder events.EventRecorder
	// Now is the clock for drill times (tests may pin it).
	Now func() time.Time
	// SkipNameValidation lets several hubs run in one process (tests).
	SkipNameValidation bool

	// live reads drills past the cache: acting on a stale phase (a Draining copy after
	// the cordon came off) would put the cordon back.
	live client.Reader
}

// +kubebuilder:rbac:groups=fleet.inferfleet.dev,resources=failoverdrills,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=fleet.inferfleet.dev,resources=failoverdrills/status;failoverdrills/finalizers,verbs=get;update;patch

// Reconcile moves a drill through its phases, as far as it can go now.
func (r *DrillReconciler) Reconcile(ctx context.Context, req mcreconcile.Request) (reconcile.Result, error) {
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("drill", req.NamespacedName))
	drill := &v1alpha1.FailoverDrill{}
	if err := r.reader().Get(ctx, req.NamespacedName, drill); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	res, err := r.reconcile(ctx, drill)
	if apierrors.IsConflict(err) {
		// Someone wrote the drill or a service since we read it: read again soon.
		log.FromContext(ctx).V(1).Info("conflict, retrying", "error", err.Error())
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	return res, err
}

func (r *DrillReconciler) reconcile(ctx context.Context, drill *v1alpha1.FailoverDrill) (reconcile.Result, error) {
	if !drill.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, r.abort(ctx, drill)
	}
	// Each phase's step is idempotent and may move the drill on; keep stepping while it
	// does, so a recovery is acted on (the cordon removed) in the reconcile that saw it.
	for {
		phase := drill.Status.Phase
		before := drill.Status.DeepCopy()
		var err error
		switch phase {
		case "", v1alpha1.DrillPending:
			err = r.start(ctx, drill)
		case v1alpha1.DrillDraining:
			err = r.drain(ctx, drill)
		case v1alpha1.DrillRecovered:
			err = r.restore(ctx, drill)
		case v1alpha1.DrillRestoring:
			err = r.failback(ctx, drill)
		case v1alpha1.DrillSucceeded, v1alpha1.DrillFailed:
			return reconcile.Result{}, r.release(ctx, drill)
		default:
			return reconcile.Result{}, nil
		}
		// A finished drill's times are observed once its status is written (a failed write
		// is decided again), from a copy: the write reads back times cut to the second.
		var finished *v1alpha1.FailoverDrill
		if !phase.Finished() && drill.Status.Phase.Finished() {
			finished = drill.DeepCopy()
		}
		drill.Status.ObservedGeneration = drill.Generation
		if werr := r.writeStatus(ctx, drill, before); werr != nil {
			return reconcile.Result{}, werr
		}
		if finished != nil {
			observeDrill(finished)
		}
		if err != nil {
			return reconcile.Result{}, err
		}
		if drill.Status.Phase == phase {
			return reconcile.Result{RequeueAfter: drillPoll}, nil
		}
	}
}

// start picks the services, takes the finalizer and records the shares before the drill.
// The cordons go on in Draining, after the status lists the services: a cordon never
// exists that the status does not account for.
func (r *DrillReconciler) start(ctx context.Context, drill *v1alpha1.FailoverDrill) error {
	services, why, err := r.pick(ctx, drill)
	if err != nil {
		return err
	}
	if why != "" {
		r.fail(drill, v1alpha1.DrillReasonCannotStart, why)
		return nil
	}
	now := r.Now()
	patch := client.MergeFromWithOptions(drill.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.AddFinalizer(drill, DrillFinalizer)
	metav1.SetMetaDataAnnotation(&drill.ObjectMeta, AnnotationDrillStarted, now.UTC().Format(time.RFC3339Nano))
	if err := r.Hub.Patch(ctx, drill, patch); err != nil {
		return fmt.Errorf("add finalizer: %w", err)
	}
	drill.Status.Services = nil
	var names []string
	for _, svc := range services {
		drill.Status.Services = append(drill.Status.Services, v1alpha1.DrillServiceReport{Name: svc.Name, Before: drillShares(svc)})
		names = append(names, svc.Name)
	}
	drill.Status.Phase = v1alpha1.DrillDraining
	drill.Status.StartTime = drillTimePtr(now)
	drill.Status.Message = ""
	setConditionOn(&drill.Status.Conditions, drill.Generation, r.Now(), v1alpha1.DrillConditionRecovered, metav1.ConditionFalse, string(v1alpha1.DrillDraining),
		fmt.Sprintf("waiting for the other clusters to carry %s ready without %s", strings.Join(names, ", "), drill.Spec.Cluster))
	setConditionOn(&drill.Status.Conditions, drill.Generation, r.Now(), v1alpha1.DrillConditionSucceeded, metav1.ConditionUnknown, string(v1alpha1.DrillDraining),
		fmt.Sprintf("%s is out of placement", drill.Spec.Cluster))
	r.event(drill, corev1.EventTypeNormal, ReasonDrillStarted, "Cordon", "took %s out of placement for %s", drill.Spec.Cluster, strings.Join(names, ", "))
	return nil
}

// pick returns the services to drill, or why there are none.
func (r *DrillReconciler) pick(ctx context.Context, drill *v1alpha1.FailoverDrill) ([]*v1alpha1.FleetInferenceService, string, error) {
	ns, cl := drill.Namespace, drill.Spec.Cluster
	var drills v1alpha1.FailoverDrillList
	if err := r.Hub.List(ctx, &drills, client.InNamespace(ns)); err != nil {
		return nil, "", fmt.Errorf("list drills: %w", err)
	}
	for _, d := range drills.Items {
		if d.UID != drill.UID && d.Spec.Cluster == cl && d.Status.Phase.Running() {
			// Both would cordon and uncordon the same entries: the first to finish would
			// end the other's drill early.
			return nil, fmt.Sprintf("drill %s is already drilling cluster %s in namespace %s: run one drill per cluster at a time", d.Name, cl, ns), nil
		}
	}
	if drill.Spec.Service != "" {
		svc := &v1alpha1.FleetInferenceService{}
		err := r.Hub.Get(ctx, types.NamespacedName{Namespace: ns, Name: drill.Spec.Service}, svc)
		switch {
		case apierrors.IsNotFound(err):
			return nil, fmt.Sprintf("FleetInferenceService %s not found in namespace %s", drill.Spec.Service, ns), nil
		case err != nil:
			return nil, "", fmt.Errorf("get service: %w", err)
		case !svc.DeletionTimestamp.IsZero():
			return nil, fmt.Sprintf("FleetInferenceService %s is being deleted", svc.Name), nil
		case slices.Contains(svc.Cordons(), cl):
			return nil, fmt.Sprintf("FleetInferenceService %s already has %s cordoned (annotation %s=%q): remove it first", svc.Name, cl, v1alpha1.AnnotationCordon, svc.Annotations[v1alpha1.AnnotationCordon]), nil
		}
		if st := drillClusterStatus(svc, cl); st == nil || st.DesiredReplicas == 0 {
			return nil, fmt.Sprintf("FleetInferenceService %s runs no replicas on cluster %s (shares: %s)", svc.Name, cl, drillSharesText(svc)), nil
		}
		return []*v1alpha1.FleetInferenceService{svc}, "", nil
	}
	var list v1alpha1.FleetInferenceServiceList
	if err := r.Hub.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, "", fmt.Errorf("list services: %w", err)
	}
	var out []*v1alpha1.FleetInferenceService
	for i := range list.Items {
		svc := &list.Items[i]
		// A service with the cluster already cordoned is not placed there: nothing to drill.
		if st := drillClusterStatus(svc, cl); st != nil && st.DesiredReplicas > 0 && svc.DeletionTimestamp.IsZero() && !slices.Contains(svc.Cordons(), cl) {
			out = append(out, svc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil, fmt.Sprintf("no FleetInferenceService in namespace %s runs replicas on cluster %s", ns, cl), nil
	}
	return out, "", nil
}

// drain keeps the cordon on and waits until the other clusters carry the services.
func (r *DrillReconciler) drain(ctx context.Context, drill *v1alpha1.FailoverDrill) error {
	start := drillTime(drill, AnnotationDrillStarted, drill.Status.StartTime)
	if r.Now().Sub(start) > drillTimeout(drill) {
		short, err := r.check(ctx, drill, drillRecovered)
		if err != nil {
			return err
		}
		// The cordon comes off before the status says Failed: a retry finds Draining and
		// times out again, never a Failed drill with its cordon still on.
		if err := r.uncordon(ctx, drill); err != nil {
			return err
		}
		r.fail(drill, v1alpha1.DrillReasonRecoveryTimedOut, fmt.Sprintf("timed out after %s waiting for the other clusters to carry the replicas with %s out: %s; %s is back in placement",
			drillTimeout(drill), drill.Spec.Cluster, strings.Join(short, "; "), drill.Spec.Cluster))
		return nil
	}
	if err := r.cordon(ctx, drill); err != nil {
		return err
	}
	short, err := r.check(ctx, drill, drillRecovered)
	if err != nil || len(short) > 0 {
		return err
	}
	svcs, err := r.services(ctx, drill)
	if err != nil {
		return err
	}
	if len(svcs) == 0 {
		if err := r.uncordon(ctx, drill); err != nil {
			return err
		}
		r.fail(drill, v1alpha1.DrillReasonServicesDeleted, "every drilled service was deleted during the drill")
		return nil
	}
	now := r.Now()
	var notes []string
	for i := range drill.Status.Services {
		rep := &drill.Status.Services[i]
		if svc := svcs[rep.Name]; svc != nil {
			rep.During = drillShares(svc)
			if carried := drillOthersDesired(svc, drill.Spec.Cluster); carried < svc.Total() {
				notes = append(notes, fmt.Sprintf("%s: the other clusters carry %d of %d replicas (placement caps them)", svc.Name, carried, svc.Total()))
			}
		}
	}
	drill.Status.Phase = v1alpha1.DrillRecovered
	drill.Status.RecoveredTime = drillTimePtr(now)
	drill.Status.TimeToRecover = drillRound(now.Sub(start))
	drill.Status.Message = strings.Join(notes, "; ")
	typ := corev1.EventTypeNormal
	if len(notes) > 0 {
		typ = corev1.EventTypeWarning
	}
	recovered := fmt.Sprintf("the other clusters carry every service without %s after %s%s", drill.Spec.Cluster, drill.Status.TimeToRecover.Duration, drillSuffix(drill.Status.Message))
	setConditionOn(&drill.Status.Conditions, drill.Generation, r.Now(), v1alpha1.DrillConditionRecovered, metav1.ConditionTrue, string(v1alpha1.DrillRecovered), recovered)
	setConditionOn(&drill.Status.Conditions, drill.Generation, r.Now(), v1alpha1.DrillConditionSucceeded, metav1.ConditionUnknown, string(v1alpha1.DrillRecovered),
		fmt.Sprintf("putting %s back into placement", drill.Spec.Cluster))
	r.event(drill, typ, ReasonDrillRecovered, "Recover", "%s", recovered)
	return nil
}

// restore puts the drilled cluster back into placement.
func (r *DrillReconciler) restore(ctx context.Context, drill *v1alpha1.FailoverDrill) error {
	if err := r.uncordon(ctx, drill); err != nil {
		return err
	}
	now := r.Now()
	patch := client.MergeFromWithOptions(drill.DeepCopy(), client.MergeFromWithOptimisticLock{})
	metav1.SetMetaDataAnnotation(&drill.ObjectMeta, AnnotationDrillRestored, now.UTC().Format(time.RFC3339Nano))
	if err := r.Hub.Patch(ctx, drill, patch); err != nil {
		return fmt.Errorf("record restore time: %w", err)
	}
	drill.Status.Phase = v1alpha1.DrillRestoring
	drill.Status.RestoreTime = drillTimePtr(now)
	setConditionOn(&drill.Status.Conditions, drill.Generation, r.Now(), v1alpha1.DrillConditionSucceeded, metav1.ConditionUnknown, string(v1alpha1.DrillRestoring),
		fmt.Sprintf("%s is back in placement, waiting for it to carry its share ready", drill.Spec.Cluster))
	return nil
}

// failback waits until the drilled cluster carries its share ready again.
func (r *DrillReconciler) failback(ctx context.Context, drill *v1alpha1.FailoverDrill) error {
	short, err := r.check(ctx, drill, drillFailedBack)
	if err != nil {
		return err
	}
	restored := drillTime(drill, AnnotationDrillRestored, drill.Status.RestoreTime)
	now := r.Now()
	if len(short) > 0 {
		if now.Sub(restored) > drillTimeout(drill) {
			r.fail(drill, v1alpha1.DrillReasonFailbackTimedOut, fmt.Sprintf("timed out after %s waiting for %s to carry its share again: %s",
				drillTimeout(drill), drill.Spec.Cluster, strings.Join(short, "; ")))
		}
		return nil
	}
	drill.Status.Phase = v1alpha1.DrillSucceeded
	drill.Status.CompletionTime = drillTimePtr(now)
	drill.Status.TimeToFailback = drillRound(now.Sub(restored))
	succeeded := fmt.Sprintf("recovered without %s in %s, failed back in %s",
		drill.Spec.Cluster, drillDurationText(drill.Status.TimeToRecover), drill.Status.TimeToFailback.Duration)
	setConditionOn(&drill.Status.Conditions, drill.Generation, r.Now(), v1alpha1.DrillConditionSucceeded, metav1.ConditionTrue, string(v1alpha1.DrillSucceeded), succeeded)
	r.event(drill, corev1.EventTypeNormal, ReasonDrillSucceeded, "Failback", "%s", succeeded)
	return nil
}

// observeDrill records a finished drill's times in inferfleet_drill_duration_seconds: the
// times to recover and to fail back exactly as its report states them, and its whole run.
// A drill that failed before it started (nothing to drill) ran nothing and is not recorded.
func observeDrill(drill *v1alpha1.FailoverDrill) {
	start := drillTime(drill, AnnotationDrillStarted, drill.Status.StartTime)
	if start.IsZero() || drill.Status.CompletionTime == nil {
		return
	}
	cluster, result := drill.Spec.Cluster, string(drill.Status.Phase)
	for phase, report := range map[string]*metav1.Duration{"recover": drill.Status.TimeToRecover, "failback": drill.Status.TimeToFailback} {
		if report != nil {
			drillDuration.WithLabelValues(cluster, phase, result).Observe(report.Seconds())
		}
	}
	drillDuration.WithLabelValues(cluster, "total", result).Observe(drill.Status.CompletionTime.Sub(start).Seconds())
}

// release lets a finished drill go: its cordons were removed before it finished.
func (r *DrillReconciler) release(ctx context.Context, drill *v1alpha1.FailoverDrill) error {
	if !controllerutil.ContainsFinalizer(drill, DrillFinalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(drill.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(drill, DrillFinalizer)
	return client.IgnoreNotFound(r.Hub.Patch(ctx, drill, patch))
}

// abort removes the cordon of a drill deleted before it finished, then lets it go.
func (r *DrillReconciler) abort(ctx context.Context, drill *v1alpha1.FailoverDrill) error {
	if !controllerutil.ContainsFinalizer(drill, DrillFinalizer) {
		return nil
	}
	if drill.Status.Phase.Running() {
		if err := r.uncordon(ctx, drill); err != nil {
			return err
		}
		r.event(drill, corev1.EventTypeNormal, ReasonDrillAborted, "Uncordon", "drill deleted while %s: %s is back in placement", drill.Status.Phase, drill.Spec.Cluster)
	}
	return r.release(ctx, drill)
}

// check runs a per-service test over the drilled services that still exist and returns
// what falls short, one entry per service.
func (r *DrillReconciler) check(ctx context.Context, drill *v1alpha1.FailoverDrill, test func(*v1alpha1.FleetInferenceService, string, []v1alpha1.DrillClusterShare) string) ([]string, error) {
	svcs, err := r.services(ctx, drill)
	if err != nil {
		return nil, err
	}
	var short []string
	for _, rep := range drill.Status.Services {
		if svc := svcs[rep.Name]; svc != nil {
			if why := test(svc, drill.Spec.Cluster, rep.Before); why != "" {
				short = append(short, svc.Name+": "+why)
			}
		}
	}
	return short, nil
}

// services reads the drilled services; one deleted mid-drill is left out.
func (r *DrillReconciler) services(ctx context.Context, drill *v1alpha1.FailoverDrill) (map[string]*v1alpha1.FleetInferenceService, error) {
	out := map[string]*v1alpha1.FleetInferenceService{}
	for _, rep := range drill.Status.Services {
		svc := &v1alpha1.FleetInferenceService{}
		err := r.Hub.Get(ctx, types.NamespacedName{Namespace: drill.Namespace, Name: rep.Name}, svc)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("get service %s: %w", rep.Name, err)
		}
		out[rep.Name] = svc
	}
	return out, nil
}

// drillRecovered is the recovery rule for one service, or why it is not met yet:
//   - the status describes the current spec (observedGeneration), and MemberSync has acted
//     on the cordon: the drilled cluster is failedOver with no replicas;
//   - every other cluster given replicas is reachable and has its whole new share ready;
//   - the others carry at least one replica.
//
// The target is the others' desiredReplicas as MemberSync placed them, not spec.replicas:
// placement may cap them (maxReplicas), and only it knows the caps. Entries are read only
// once every one carries the current decision (placementPending), so that sum is never a
// half-move.
// A capped recovery still counts; the drill's message says how many replicas were carried.
func drillRecovered(svc *v1alpha1.FleetInferenceService, cluster string, _ []v1alpha1.DrillClusterShare) string {
	if svc.Status.ObservedGeneration != svc.Generation {
		return fmt.Sprintf("status describes generation %d, not %d", svc.Status.ObservedGeneration, svc.Generation)
	}
	if why := placementPending(svc); why != "" {
		return why
	}
	st := drillClusterStatus(svc, cluster)
	switch {
	case st == nil:
		return cluster + " is not in the status"
	case !st.FailedOver || st.DesiredReplicas > 0:
		return fmt.Sprintf("%s not failed over yet (desired %d)", cluster, st.DesiredReplicas)
	}
	var short []string
	for _, c := range svc.Status.Clusters {
		switch {
		case c.Name == cluster || c.DesiredReplicas == 0:
		case !c.Reachable:
			short = append(short, c.Name+" unreachable")
		case c.ReadyReplicas < c.DesiredReplicas:
			short = append(short, fmt.Sprintf("%s %d/%d ready", c.Name, c.ReadyReplicas, c.DesiredReplicas))
		}
	}
	if len(short) > 0 {
		return strings.Join(short, ", ")
	}
	if drillOthersDesired(svc, cluster) == 0 {
		return "no other cluster was given replicas"
	}
	return ""
}

// placementPending says which clusters' status entries do not yet carry the placement
// decision (each member records its share when it has applied it, one by one): until they
// all do, the entries mix the old and the new split and are no basis for a verdict.
// Without a recorded decision the entries stand alone.
func placementPending(svc *v1alpha1.FleetInferenceService) string {
	p := svc.Status.Placement
	if p == nil {
		return ""
	}
	if p.ObservedGeneration != svc.Generation {
		return fmt.Sprintf("placement describes generation %d, not %d", p.ObservedGeneration, svc.Generation)
	}
	var pending []string
	for _, d := range p.Clusters {
		if d.Reason == v1alpha1.PlacementNotRegistered {
			continue
		}
		e, ok := svc.Status.Cluster(d.Name)
		if !ok || e.DesiredReplicas != d.Replicas || e.FailedOver != d.FailedOver() {
			pending = append(pending, fmt.Sprintf("%s (%d replicas)", d.Name, d.Replicas))
		}
	}
	if len(pending) > 0 {
		return "placement not yet applied in " + strings.Join(pending, ", ")
	}
	return ""
}

// drillFailedBack is the failback rule: the drilled cluster is back in placement with its
// share from before the drill, all ready. The others shedding their extra is not waited for.
func drillFailedBack(svc *v1alpha1.FleetInferenceService, cluster string, before []v1alpha1.DrillClusterShare) string {
	if svc.Status.ObservedGeneration != svc.Generation {
		return fmt.Sprintf("status describes generation %d, not %d", svc.Status.ObservedGeneration, svc.Generation)
	}
	if why := placementPending(svc); why != "" {
		return why
	}
	want := drillShareOf(before, cluster)
	st := drillClusterStatus(svc, cluster)
	switch {
	case st == nil:
		return cluster + " is not in the status"
	case st.FailedOver:
		return cluster + " still failed over"
	case st.DesiredReplicas != want:
		return fmt.Sprintf("%s desired %d, its share before the drill was %d", cluster, st.DesiredReplicas, want)
	case st.ReadyReplicas < st.DesiredReplicas:
		return fmt.Sprintf("%s %d/%d ready", cluster, st.ReadyReplicas, st.DesiredReplicas)
	}
	return ""
}

// cordon adds the drilled cluster to each service's cordon list.
func (r *DrillReconciler) cordon(ctx context.Context, drill *v1alpha1.FailoverDrill) error {
	return r.editCordons(ctx, drill, func(list []string) []string {
		if slices.Contains(list, drill.Spec.Cluster) {
			return list
		}
		return append(list, drill.Spec.Cluster)
	})
}

// uncordon removes the drilled cluster from each service's cordon list, and the
// annotation when nothing else is cordoned.
func (r *DrillReconciler) uncordon(ctx context.Context, drill *v1alpha1.FailoverDrill) error {
	return r.editCordons(ctx, drill, func(list []string) []string {
		return slices.DeleteFunc(list, func(s string) bool { return s == drill.Spec.Cluster })
	})
}

// editCordons rewrites the cordon annotation of every drilled service that still exists.
// The patch carries the resourceVersion: the list is one string, and a concurrent edit
// by someone else must not be lost.
func (r *DrillReconciler) editCordons(ctx context.Context, drill *v1alpha1.FailoverDrill, edit func([]string) []string) error {
	var errs []error
	for _, rep := range drill.Status.Services {
		svc := &v1alpha1.FleetInferenceService{}
		if err := r.Hub.Get(ctx, types.NamespacedName{Namespace: drill.Namespace, Name: rep.Name}, svc); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("get service %s: %w", rep.Name, err))
			}
			continue
		}
		old := svc.Cordons()
		list := edit(slices.Clone(old))
		if slices.Equal(old, list) {
			continue
		}
		patch := client.MergeFromWithOptions(svc.DeepCopy(), client.MergeFromWithOptimisticLock{})
		if len(list) == 0 {
			delete(svc.Annotations, v1alpha1.AnnotationCordon)
		} else {
			metav1.SetMetaDataAnnotation(&svc.ObjectMeta, v1alpha1.AnnotationCordon, strings.Join(list, ","))
		}
		if err := r.Hub.Patch(ctx, svc, patch); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("cordon annotation of %s: %w", rep.Name, err))
		}
	}
	return errors.Join(errs...)
}

// fail ends the drill, for the reason its conditions give. Callers remove the cordon first
// when one may be on.
func (r *DrillReconciler) fail(drill *v1alpha1.FailoverDrill, reason, msg string) {
	drill.Status.Phase = v1alpha1.DrillFailed
	drill.Status.Message = msg
	drill.Status.CompletionTime = drillTimePtr(r.Now())
	if !meta.IsStatusConditionTrue(drill.Status.Conditions, v1alpha1.DrillConditionRecovered) {
		setConditionOn(&drill.Status.Conditions, drill.Generation, r.Now(), v1alpha1.DrillConditionRecovered, metav1.ConditionFalse, reason, msg)
	}
	setConditionOn(&drill.Status.Conditions, drill.Generation, r.Now(), v1alpha1.DrillConditionSucceeded, metav1.ConditionFalse, reason, msg)
	r.event(drill, corev1.EventTypeWarning, ReasonDrillFailed, "Drill", "%s", msg)
}

// writeStatus writes the drill's status only when it changed.
func (r *DrillReconciler) writeStatus(ctx context.Context, drill *v1alpha1.FailoverDrill, before *v1alpha1.FailoverDrillStatus) error {
	if equality.Semantic.DeepEqual(before, &drill.Status) {
		return nil
	}
	if err := r.Hub.Status().Update(ctx, drill); err != nil {
		return fmt.Errorf("write drill status: %w", err)
	}
	return nil
}

func (r *DrillReconciler) event(drill *v1alpha1.FailoverDrill, typ, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(drill, nil, typ, reason, action, note, args...)
	}
}

func (r *DrillReconciler) reader() client.Reader {
	if r.live != nil {
		return r.live
	}
	return r.Hub
}

// SetupWithManager watches drills, and services in the hub mapped to the unfinished
// drills in their namespace (a status change may end a phase).
func (r *DrillReconciler) SetupWithManager(mgr mcmanager.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.live == nil {
		r.live = mgr.GetLocalManager().GetAPIReader()
	}
	local := []mcbuilder.WatchesOption{mcbuilder.WithEngageWithLocalCluster(true), mcbuilder.WithEngageWithProviderClusters(false)}
	byNamespace := func(_ multicluster.ClusterName, _ cluster.Cluster) handler.TypedEventHandler[client.Object, mcreconcile.Request] {
		return mchandler.TypedEnqueueRequestsFromMapFuncWithClusterPreservation(func(ctx context.Context, obj client.Object) []mcreconcile.Request {
			var list v1alpha1.FailoverDrillList
			if err := r.Hub.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
				log.FromContext(ctx).Error(err, "list drills")
				return nil
			}
			var out []mcreconcile.Request
			for _, d := range list.Items {
				if !d.Status.Phase.Finished() {
					out = append(out, mcreconcile.Request{Request: reconcile.Request{NamespacedName: types.NamespacedName{Namespace: d.Namespace, Name: d.Name}}})
				}
			}
			return out
		})
	}
	return mcbuilder.ControllerManagedBy(mgr).
		Named("failover-drill").
		WithOptions(controllerOptions(r.SkipNameValidation)).
		For(&v1alpha1.FailoverDrill{}, mcbuilder.WithEngageWithLocalCluster(true), mcbuilder.WithEngageWithProviderClusters(false)).
		Watches(&v1alpha1.FleetInferenceService{}, byNamespace, local...).
		Complete(r)
}

func drillTimeout(drill *v1alpha1.FailoverDrill) time.Duration {
	if drill.Spec.Timeout == nil || drill.Spec.Timeout.Duration <= 0 {
		return DefaultDrillTimeout
	}
	return drill.Spec.Timeout.Duration
}

// drillTime reads an instant recorded in an annotation, else the status time (to the second).
func drillTime(drill *v1alpha1.FailoverDrill, key string, fallback *metav1.Time) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, drill.Annotations[key]); err == nil {
		return t
	}
	if fallback != nil {
		return fallback.Time
	}
	return time.Time{}
}

func drillClusterStatus(svc *v1alpha1.FleetInferenceService, name string) *v1alpha1.ClusterStatus {
	for i := range svc.Status.Clusters {
		if svc.Status.Clusters[i].Name == name {
			return &svc.Status.Clusters[i]
		}
	}
	return nil
}

// drillOthersDesired is the replicas placed on every cluster but one.
func drillOthersDesired(svc *v1alpha1.FleetInferenceService, cluster string) int32 {
	var n int32
	for _, c := range svc.Status.Clusters {
		if c.Name != cluster {
			n += c.DesiredReplicas
		}
	}
	return n
}

// drillShares are the service's per-cluster desired replicas, by cluster.
func drillShares(svc *v1alpha1.FleetInferenceService) []v1alpha1.DrillClusterShare {
	var out []v1alpha1.DrillClusterShare
	for _, c := range svc.Status.Clusters {
		out = append(out, v1alpha1.DrillClusterShare{Cluster: c.Name, Replicas: c.DesiredReplicas})
	}
	slices.SortFunc(out, func(a, b v1alpha1.DrillClusterShare) int { return strings.Compare(a.Cluster, b.Cluster) })
	return out
}

// drillSharesText is the service's shares for a message: "east=3, west=3".
func drillSharesText(svc *v1alpha1.FleetInferenceService) string {
	var parts []string
	for _, sh := range drillShares(svc) {
		parts = append(parts, fmt.Sprintf("%s=%d", sh.Cluster, sh.Replicas))
	}
	if len(parts) == 0 {
		return "none reported"
	}
	return strings.Join(parts, ", ")
}

// drillShareOf is one cluster's replicas in shares, 0 when it is not listed.
func drillShareOf(shares []v1alpha1.DrillClusterShare, cluster string) int32 {
	for _, sh := range shares {
		if sh.Cluster == cluster {
			return sh.Replicas
		}
	}
	return 0
}

// drillRound is a time of the report, to a tenth of a second.
func drillRound(d time.Duration) *metav1.Duration {
	return &metav1.Duration{Duration: d.Round(100 * time.Millisecond)}
}

// drillDurationText is a time of the report for a message, "-" when there is none.
func drillDurationText(d *metav1.Duration) string {
	if d == nil {
		return "-"
	}
	return d.Duration.String()
}

func drillTimePtr(t time.Time) *metav1.Time { x := metav1.NewTime(t); return &x }

func drillSuffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}
