// Package controllers holds the hub's reconcilers. Each fetches, calls a renderer, diffs,
// applies and writes status; what objects should exist is decided in controllers/render.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	mcbuilder "sigs.k8s.io/multicluster-runtime/pkg/builder"
	mchandler "sigs.k8s.io/multicluster-runtime/pkg/handler"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"
	mcreconcile "sigs.k8s.io/multicluster-runtime/pkg/reconcile"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/fleet"
)

// Finalizer holds a FleetInferenceService until its objects are gone from every member.
const Finalizer = "fleet.inferfleet.dev/cleanup"

// Reasons used in conditions and events.
const (
	ReasonSynced          = "Synced"
	ReasonAllSynced       = "AllClustersSynced"
	ReasonNoClusters      = "NoClustersSelected"
	ReasonNotRegistered   = "ClusterNotRegistered"
	ReasonUnreachable     = "ClusterUnreachable"
	ReasonConflict        = "Conflict"
	ReasonSyncFailed      = "SyncFailed"
	ReasonInvalidSpec     = "InvalidSpec"
	ReasonReplicasReady   = "ReplicasReady"
	ReasonReplicasPending = "ReplicasNotReady"
	ReasonNotPropagated   = "NotPropagated"
	ReasonAsExpected      = "AsExpected"
	ReasonCleanedUp       = "CleanedUp"
	ReasonCleanupBlocked  = "CleanupBlocked"
	ReasonConnecting      = "Connecting"
)

// memberKinds are every kind the hub may own in a member, for pruning and cleanup.
var memberKinds = []schema.GroupVersionKind{
	{Version: "v1", Kind: "Secret"},
	{Version: "v1", Kind: "ConfigMap"},
	{Version: "v1", Kind: "ServiceAccount"},
	{Version: "v1", Kind: "Service"},
	{Group: "apps", Version: "v1", Kind: "Deployment"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"},
	render.GVKInferencePool,
	render.GVKInferenceObjective,
	render.GVKAutoscalingMetric,
	render.GVKHealthCheckPolicy,
	render.GVKGCPBackendPolicy,
	render.GVKComputeClass,
	render.GVKPodMonitoring,
}

var clusterScopedKinds = map[schema.GroupVersionKind]bool{
	render.GVKComputeClass: true,
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}:        true,
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"}: true,
}

// MemberSync keeps every selected member cluster holding the objects a
// FleetInferenceService renders to, and reports each cluster's state.
type MemberSync struct {
	Hub      client.Client
	Clusters fleet.ClusterGetter
	Registry *fleet.Registry
	Recorder events.EventRecorder
	// Monitor, when set, tells which members' API servers answer; failover uses it.
	Monitor *fleet.Monitor
	// ClusterTimeout bounds the work on one member, so a slow one never holds the others.
	ClusterTimeout time.Duration
	// Resync re-checks members for drift in kinds that are not watched.
	Resync time.Duration
	// Now is the clock for status times (tests pin it).
	Now func() time.Time
	// SkipNameValidation lets several hubs run in one process (tests).
	SkipNameValidation bool

	pruned sync.Map // "<uid>/<cluster>" -> fingerprint of the last desired set pruned against
	// firstSeen is when the hub first saw each service's current generation (by UID), and
	// propagated which generation each cluster last got: propagation latency comes from both.
	firstSeen  sync.Map
	propagated sync.Map
}

// clusterResult is the outcome of syncing one member.
type clusterResult struct {
	status  v1alpha1.ClusterStatus
	applied []string
	pruned  []string
	err     error
	reason  string
	// pending: the hub is still connecting; the last recorded state stands.
	pending bool
	// unschedulable: some model-server pods cannot be scheduled (capacity is gone).
	unschedulable    bool
	unschedulableWhy string
}

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Reconcile syncs one FleetInferenceService to every member it selects.
func (r *MemberSync) Reconcile(ctx context.Context, req mcreconcile.Request) (reconcile.Result, error) {
	defer func(start time.Time) {
		reconcileDuration.WithLabelValues("member-sync").Observe(time.Since(start).Seconds())
	}(time.Now())
	logger := log.FromContext(ctx).WithValues("service", req.NamespacedName)
	svc := &v1alpha1.FleetInferenceService{}
	if err := r.Hub.Get(ctx, req.NamespacedName, svc); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !svc.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, svc)
	}
	if err := ensureFinalizer(ctx, r.Hub, svc, Finalizer); err != nil {
		return reconcile.Result{}, err
	}

	desired := svc.DeepCopy()
	v1alpha1.SetDefaults(desired)
	before := svc.Status.DeepCopy()
	if err := desired.Validate(); err != nil {
		r.setCondition(svc, v1alpha1.ConditionPropagated, metav1.ConditionFalse, ReasonInvalidSpec, err.Error())
		r.summarize(svc)
		return reconcile.Result{}, r.writeStatus(ctx, svc, before)
	}

	all, err := r.Registry.List(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	placement, err := fleet.Place(desired, all)
	if err != nil {
		return reconcile.Result{}, err
	}
	selected, missing := placement.Selected, placement.Missing
	var names []string
	for _, c := range selected {
		names = append(names, c.Name)
	}
	if err := v1alpha1.RegionalClusters(desired, names); err != nil && len(names) > 1 {
		// A regional Gateway serves one cluster's pool: a selector that finds several is
		// the user's to fix, and nothing is placed meanwhile.
		r.setCondition(svc, v1alpha1.ConditionPropagated, metav1.ConditionFalse, ReasonInvalidSpec, err.Error())
		r.summarize(svc)
		return reconcile.Result{}, r.writeStatus(ctx, svc, before)
	}
	now := r.Now()
	obs := r.observations(svc, selected)
	plan := fleet.Decide(desired, placement, obs, now)

	var token *corev1.Secret
	if ref := desired.Spec.Model.Server.HuggingFaceTokenSecretRef; ref != nil {
		s := &corev1.Secret{}
		switch err := r.Hub.Get(ctx, types.NamespacedName{Namespace: svc.Namespace, Name: ref.Name}, s); {
		case err == nil:
			token = s
		case !apierrors.IsNotFound(err):
			return reconcile.Result{}, fmt.Errorf("get token secret: %w", err)
		}
	}

	results := make([]clusterResult, len(selected))
	var wg sync.WaitGroup
	for i, c := range selected {
		wg.Add(1)
		go func() {
			defer wg.Done()
			share := plan.Shares[c.Name]
			if reach, known := r.reachability(c.Name); known && !reach.Reachable {
				// The monitor sees it down: do not wait out a timeout per reconcile.
				results[i] = unreachableResult(c, share, reach.Reason)
				return
			}
			withdraw := plan.FailedOver[c.Name] && desired.Spec.Gateway.Provider == v1alpha1.ProviderGKE
			results[i] = r.syncCluster(ctx, desired, c, share, token, withdraw)
		}()
	}
	wg.Wait()
	announce := r.recordHealth(svc, results, plan, obs, now)
	// Members that are no longer selected lose the service's objects.
	selectedSet := map[string]bool{}
	for _, c := range selected {
		selectedSet[c.Name] = true
	}
	var stale []string
	for _, c := range all {
		if !selectedSet[c.Name] && r.hadCluster(svc, c.Name) {
			stale = append(stale, c.Name)
		}
	}
	staleErrs := make([]error, len(stale))
	for i, name := range stale {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deleted, err := r.cleanCluster(ctx, svc, name)
			staleErrs[i] = err
			if err == nil && len(deleted) > 0 {
				r.clusterEvent(svc, name, corev1.EventTypeNormal, ReasonCleanedUp, "Cleanup", "removed %d objects from %s (no longer selected)", len(deleted), name)
			}
		}()
	}
	wg.Wait()

	r.observePropagation(svc, results)
	r.buildStatus(svc, desired, results, missing, staleErrs, stale)
	for _, res := range results {
		switch {
		case res.err != nil:
			r.clusterEvent(svc, res.status.Name, corev1.EventTypeWarning, res.reason, "Sync", "%s: %v", res.status.Name, res.err)
		case len(res.applied) > 0 || len(res.pruned) > 0:
			r.clusterEvent(svc, res.status.Name, corev1.EventTypeNormal, ReasonSynced, "Sync", "%s: applied %s%s", res.status.Name, listSummary(res.applied), prunedNote(res.pruned))
		}
	}
	r.failoverCondition(svc, plan, obs)
	r.summarize(svc)
	if ctx.Err() != nil {
		// Stopping: what this reconcile saw may be the shutdown itself.
		return reconcile.Result{}, ctx.Err()
	}
	if err := r.writeStatus(ctx, svc, before); err != nil {
		return reconcile.Result{}, err
	}
	for _, a := range announce {
		a()
	}
	logger.V(1).Info("reconciled", "clusters", len(selected), "shares", plan.Shares)
	requeue := r.Resync
	if plan.RecheckAfter > 0 && plan.RecheckAfter < requeue {
		requeue = plan.RecheckAfter
	}
	for _, res := range results {
		if res.err != nil {
			// Per-cluster failures are in status; retry with the workqueue's backoff.
			return reconcile.Result{}, fmt.Errorf("%d of %d clusters not in sync", countErrs(results), len(results))
		}
	}
	for _, err := range staleErrs {
		if err != nil {
			return reconcile.Result{}, err
		}
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}

// hadCluster reports whether the cluster may hold svc's objects: the status lists it, or
// this hub synced it (a status write that recorded it may have lost a race with a spec
// change that moved the service away).
func (r *MemberSync) hadCluster(svc *v1alpha1.FleetInferenceService, name string) bool {
	if _, ok := r.pruned.Load(string(svc.UID) + "/" + name); ok {
		return true
	}
	for _, c := range svc.Status.Clusters {
		if c.Name == name {
			return true
		}
	}
	return false
}

func countErrs(rs []clusterResult) int {
	n := 0
	for _, r := range rs {
		if r.err != nil {
			n++
		}
	}
	return n
}

func listSummary(items []string) string {
	if len(items) == 0 {
		return "nothing"
	}
	if len(items) > 4 {
		return fmt.Sprintf("%s and %d more", strings.Join(items[:4], ", "), len(items)-4)
	}
	return strings.Join(items, ", ")
}

func prunedNote(p []string) string {
	if len(p) == 0 {
		return ""
	}
	return "; removed " + listSummary(p)
}

// syncCluster applies svc's objects to one member and reads back its state.
func (r *MemberSync) syncCluster(ctx context.Context, svc *v1alpha1.FleetInferenceService, c fleet.Cluster, replicas int32, token *corev1.Secret, withdrawExport bool) clusterResult {
	res := clusterResult{status: v1alpha1.ClusterStatus{Name: c.Name, Region: c.Region, DesiredReplicas: replicas}}
	fail := func(reason string, err error) clusterResult {
		res.err, res.reason = err, reason
		res.status.Message = err.Error()
		return res
	}
	objs, err := render.Member(svc, render.MemberInput{Cluster: c, Replicas: replicas, TokenSecret: token, WithdrawExport: withdrawExport})
	if err != nil {
		// A missing token Secret is the user's to fix; nothing is applied half-way.
		res.status.Reachable = true
		return fail(ReasonSyncFailed, err)
	}
	cl, err := r.Clusters.GetCluster(ctx, multicluster.ClusterName(c.Name))
	if err != nil {
		if r.Monitor != nil {
			// No client for a registered cluster (connecting, or the hub is stopping): the
			// monitor, which probes on its own, is the one to call it unreachable.
			return pendingResult(c, replicas, svc)
		}
		return fail(ReasonUnreachable, fmt.Errorf("not connected: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, r.ClusterTimeout)
	defer cancel()
	mc := cl.GetClient()

	if err := ensureNamespace(ctx, mc, svc); err != nil {
		return fail(classify(err), err)
	}
	res.status.Reachable = true
	keep := map[string]bool{}
	var conflicts []string
	for _, obj := range objs {
		out, live, err := applyOwned(ctx, mc, svc, obj)
		gvk := obj.GetObjectKind().GroupVersionKind()
		keep[kindKey(gvk, client.ObjectKeyFromObject(obj))] = true
		switch {
		case IsConflict(err):
			conflicts = append(conflicts, err.Error())
			continue
		case err != nil:
			if isUnreachable(err) {
				res.status.Reachable = false
			}
			return fail(classify(err), err)
		case out == Applied:
			res.applied = append(res.applied, kindKey(gvk, client.ObjectKeyFromObject(obj)))
		}
		r.observe(&res.status, svc, live)
	}
	fp := strings.Join(sortedKeys(keep), ",")
	pruneKey := string(svc.UID) + "/" + c.Name
	if prev, ok := r.pruned.Load(pruneKey); !ok || prev != fp || len(res.applied) > 0 {
		deleted, err := deleteOwned(ctx, mc, svc, render.RoleMember, memberKinds, clusterScopedKinds, keep)
		if err != nil {
			return fail(classify(err), err)
		}
		res.pruned = deleted
		r.pruned.Store(pruneKey, fp)
	}
	if len(res.applied) > 0 || len(res.pruned) > 0 {
		now := metav1.NewTime(r.Now().UTC().Truncate(time.Second))
		res.status.LastSyncTime = &now
	}
	if len(conflicts) > 0 {
		return fail(ReasonConflict, errors.New(strings.Join(conflicts, "; ")))
	}
	if res.status.ReadyReplicas < replicas {
		res.unschedulable, res.unschedulableWhy = unschedulablePods(ctx, cl.GetAPIReader(), svc)
	}
	return res
}

// unschedulablePods reports whether any of the service's model-server pods cannot be
// scheduled: the sign that a cluster lost the capacity for its share.
func unschedulablePods(ctx context.Context, r client.Reader, svc *v1alpha1.FleetInferenceService) (bool, string) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(svc.Namespace), client.MatchingLabels{"app": svc.Name}); err != nil {
		return false, ""
	}
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return true, fmt.Sprintf("pod %s unschedulable: %s", p.Name, c.Message)
			}
		}
	}
	return false, ""
}

// pendingResult carries a cluster's last recorded status while the hub connects to it.
func pendingResult(c fleet.Cluster, share int32, svc *v1alpha1.FleetInferenceService) clusterResult {
	st := v1alpha1.ClusterStatus{Name: c.Name, Region: c.Region}
	for _, prev := range svc.Status.Clusters {
		if prev.Name == c.Name {
			st = *prev.DeepCopy()
		}
	}
	st.DesiredReplicas = share
	return clusterResult{status: st, pending: true, err: fmt.Errorf("connecting to %s", c.Name), reason: ReasonConnecting}
}

// unreachableResult records a cluster the monitor cannot reach, without touching it.
func unreachableResult(c fleet.Cluster, share int32, reason string) clusterResult {
	err := fmt.Errorf("unreachable: %s", reason)
	return clusterResult{
		status: v1alpha1.ClusterStatus{Name: c.Name, Region: c.Region, DesiredReplicas: share, Message: err.Error()},
		err:    err, reason: ReasonUnreachable,
	}
}

// observe reads the member state status reports from a live object.
func (r *MemberSync) observe(st *v1alpha1.ClusterStatus, svc *v1alpha1.FleetInferenceService, live *unstructured.Unstructured) {
	if live == nil {
		return
	}
	switch live.GroupVersionKind() {
	case schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}:
		if live.GetName() == svc.Name {
			ready, _, _ := unstructured.NestedInt64(live.Object, "status", "readyReplicas")
			st.ReadyReplicas = int32(ready)
		}
	case render.GVKInferencePool:
		k, v := render.ExportAnnotation(svc)
		st.Exported = live.GetAnnotations()[k] == v
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ensureNamespace creates the service's namespace in a member when it is missing, marked
// so that only a namespace the hub created is ever deleted by it.
func ensureNamespace(ctx context.Context, c client.Client, svc *v1alpha1.FleetInferenceService) error {
	ns := &unstructured.Unstructured{}
	ns.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "Namespace"})
	err := c.Get(ctx, client.ObjectKey{Name: svc.Namespace}, ns)
	if !apierrors.IsNotFound(err) {
		if err != nil {
			return fmt.Errorf("get namespace %s: %w", svc.Namespace, err)
		}
		return nil
	}
	created := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        svc.Namespace,
		Labels:      map[string]string{render.LabelManagedBy: render.ManagedBy},
		Annotations: map[string]string{render.AnnotationCreatedNamespace: "true"},
	}}
	if err := c.Create(ctx, created); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", svc.Namespace, err)
	}
	// No token controller is assumed: pods need the default ServiceAccount to exist.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: svc.Namespace}}
	if err := c.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create default service account in %s: %w", svc.Namespace, err)
	}
	return nil
}

// isUnreachable tells errors of reaching the API server from errors it returned.
func isUnreachable(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return apierrors.IsServerTimeout(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsTimeout(err)
	}
	return !meta.IsNoMatchError(err)
}

func classify(err error) string {
	if isUnreachable(err) {
		return ReasonUnreachable
	}
	return ReasonSyncFailed
}

// cleanCluster removes every object svc owns from one member, and the namespace if the hub
// created it and nothing else of the hub's remains there.
func (r *MemberSync) cleanCluster(ctx context.Context, svc *v1alpha1.FleetInferenceService, name string) ([]string, error) {
	cl, err := r.Clusters.GetCluster(ctx, multicluster.ClusterName(name))
	if err != nil {
		return nil, fmt.Errorf("%s: not connected: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.ClusterTimeout)
	defer cancel()
	c := cl.GetClient()
	deleted, err := deleteOwned(ctx, c, svc, render.RoleMember, memberKinds, clusterScopedKinds, nil)
	if err != nil {
		return deleted, fmt.Errorf("%s: %w", name, err)
	}
	r.pruned.Delete(string(svc.UID) + "/" + name)
	ns := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: svc.Namespace}, ns); err != nil {
		return deleted, client.IgnoreNotFound(err)
	}
	if ns.Annotations[render.AnnotationCreatedNamespace] != "true" || !ns.DeletionTimestamp.IsZero() {
		return deleted, nil
	}
	others := &unstructured.UnstructuredList{}
	others.SetGroupVersionKind(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DeploymentList"})
	if err := c.List(ctx, others, client.InNamespace(svc.Namespace), client.MatchingLabels{render.LabelManagedBy: render.ManagedBy}); err != nil {
		return deleted, fmt.Errorf("%s: %w", name, err)
	}
	for _, o := range others.Items {
		if o.GetDeletionTimestamp() == nil && o.GetLabels()[render.LabelService] != svc.Name {
			return deleted, nil
		}
	}
	if err := c.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
		return deleted, fmt.Errorf("%s: delete namespace: %w", name, err)
	}
	return append(deleted, "Namespace "+svc.Namespace), nil
}

// finalize removes the service's objects from every registered member (unless the user
// chose to orphan them), then releases the finalizer. An unreachable member keeps the
// finalizer until it returns; the others are cleaned meanwhile.
func (r *MemberSync) finalize(ctx context.Context, svc *v1alpha1.FleetInferenceService) (reconcile.Result, error) {
	if !controllerutil.ContainsFinalizer(svc, Finalizer) {
		return reconcile.Result{}, nil
	}
	if svc.Spec.DeletionPolicy != v1alpha1.DeletionOrphan {
		all, err := r.Registry.List(ctx)
		if err != nil {
			return reconcile.Result{}, err
		}
		errs := make([]error, len(all))
		var wg sync.WaitGroup
		for i, c := range all {
			wg.Add(1)
			go func() {
				defer wg.Done()
				deleted, err := r.cleanCluster(ctx, svc, c.Name)
				errs[i] = err
				if len(deleted) > 0 {
					r.clusterEvent(svc, c.Name, corev1.EventTypeNormal, ReasonCleanedUp, "Cleanup", "removed %d objects from %s", len(deleted), c.Name)
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			r.event(svc, corev1.EventTypeWarning, ReasonCleanupBlocked, "Cleanup", "waiting for members to clean up (set spec.deletionPolicy: Orphan to skip): %v", err)
			return reconcile.Result{RequeueAfter: 5 * time.Second}, nil
		}
	}
	patch := client.MergeFrom(svc.DeepCopy())
	controllerutil.RemoveFinalizer(svc, Finalizer)
	if err := r.Hub.Patch(ctx, svc, patch); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	return reconcile.Result{}, nil
}

func (r *MemberSync) event(svc *v1alpha1.FleetInferenceService, typ, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(svc, nil, typ, reason, action, note, args...)
	}
}

// clusterEvent records an event about what happened in one member cluster, related to the
// member's registration Secret. The event recorder folds events with the same regarding
// object, reason, action and related object into one series that keeps the first note: with
// the cluster as the related object, each member's events keep their own note instead of
// counting under another member's.
func (r *MemberSync) clusterEvent(svc *v1alpha1.FleetInferenceService, cluster, typ, reason, action, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	ns := fleet.RegistrationNamespace
	if r.Registry != nil && r.Registry.Namespace != "" {
		ns = r.Registry.Namespace
	}
	related := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Name: cluster, Namespace: ns}}
	r.Recorder.Eventf(svc, related, typ, reason, action, note, args...)
}

// SetupWithManager watches services in the hub, registrations, token Secrets, and the
// owned objects in every member, so a change anywhere reconciles the right service.
func (r *MemberSync) SetupWithManager(mgr mcmanager.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.ClusterTimeout == 0 {
		r.ClusterTimeout = DefaultMemberTimeout
	}
	if r.Resync == 0 {
		r.Resync = 5 * time.Minute
	}
	local := []mcbuilder.WatchesOption{mcbuilder.WithEngageWithLocalCluster(true), mcbuilder.WithEngageWithProviderClusters(false)}
	members := []mcbuilder.WatchesOption{mcbuilder.WithEngageWithLocalCluster(false), mcbuilder.WithEngageWithProviderClusters(true)}
	b := mcbuilder.ControllerManagedBy(mgr).
		Named("member-sync").
		WithOptions(controllerOptions(r.SkipNameValidation)).
		For(&v1alpha1.FleetInferenceService{}, mcbuilder.WithEngageWithLocalCluster(true), mcbuilder.WithEngageWithProviderClusters(false)).
		Watches(&corev1.Secret{}, r.secretHandler(), local...)
	for _, obj := range []client.Object{&appsv1.Deployment{}, &infv1.InferencePool{}, &corev1.ConfigMap{}, &corev1.Service{}, &corev1.Secret{}} {
		b = b.Watches(obj, ownerHandler, members...)
	}
	return b.Complete(r)
}

// ownerHandler maps an owned member object to its service in the hub.
func ownerHandler(_ multicluster.ClusterName, _ cluster.Cluster) handler.TypedEventHandler[client.Object, mcreconcile.Request] {
	return mchandler.TypedEnqueueRequestsFromMapFuncWithClusterPreservation(func(_ context.Context, obj client.Object) []mcreconcile.Request {
		l := obj.GetLabels()
		if l[render.LabelManagedBy] != render.ManagedBy || l[render.LabelService] == "" {
			return nil
		}
		return []mcreconcile.Request{{Request: reconcile.Request{NamespacedName: types.NamespacedName{Namespace: l[render.LabelNamespace], Name: l[render.LabelService]}}}}
	})
}

// secretHandler maps a registration Secret to every service, and a token Secret to the
// services in its namespace that name it.
func (r *MemberSync) secretHandler() mchandler.TypedEventHandlerFunc[client.Object, mcreconcile.Request] {
	return func(_ multicluster.ClusterName, _ cluster.Cluster) handler.TypedEventHandler[client.Object, mcreconcile.Request] {
		return mchandler.TypedEnqueueRequestsFromMapFuncWithClusterPreservation(func(ctx context.Context, obj client.Object) []mcreconcile.Request {
			registration := r.Registry.Registers(obj)
			var list v1alpha1.FleetInferenceServiceList
			opts := []client.ListOption{}
			if !registration {
				opts = append(opts, client.InNamespace(obj.GetNamespace()))
			}
			if err := r.Hub.List(ctx, &list, opts...); err != nil {
				return nil
			}
			var out []mcreconcile.Request
			for _, s := range list.Items {
				ref := s.Spec.Model.Server.HuggingFaceTokenSecretRef
				if registration || (ref != nil && ref.Name == obj.GetName()) {
					out = append(out, mcreconcile.Request{Request: reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}}})
				}
			}
			return out
		})
	}
}

// observePropagation records, once per generation and cluster, how long the generation
// took from first sight to applied there; and counts failed syncs. Memory stays bounded:
// one entry per service and per service and cluster.
func (r *MemberSync) observePropagation(svc *v1alpha1.FleetInferenceService, results []clusterResult) {
	type seen struct {
		gen int64
		at  time.Time
	}
	uid := string(svc.UID)
	v, _ := r.firstSeen.Load(uid)
	first, ok := v.(seen)
	if !ok || first.gen != svc.Generation {
		first = seen{gen: svc.Generation, at: r.Now()}
		r.firstSeen.Store(uid, first)
	}
	for _, res := range results {
		if res.err != nil {
			if !res.pending {
				applyErrors.WithLabelValues(res.status.Name, res.reason).Inc()
			}
			continue
		}
		key := uid + "/" + res.status.Name
		if prev, ok := r.propagated.Load(key); !ok || prev.(int64) != svc.Generation {
			r.propagated.Store(key, svc.Generation)
			propagation.WithLabelValues(res.status.Name).Observe(r.Now().Sub(first.at).Seconds())
		}
	}
}
