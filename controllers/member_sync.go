// Package controllers holds the hub's reconcilers. Each fetches, calls a renderer, diffs,
// applies and writes status; what objects should exist is decided in controllers/render.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
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

// memberWatched are the kinds member sync watches in every member, the hub's own objects
// only (the member cache's label selector): a change to one wakes the (service, member)
// it belongs to, so an edit is reverted at once, and applies read these kinds from the
// cache before asking the member's API server. The custom resources are left out but
// InferencePool, which the hub needs anyway to report the pool: a member without one of
// their CRDs must still sync the rest.
var memberWatched = []client.Object{
	&appsv1.Deployment{}, &infv1.InferencePool{}, &corev1.ConfigMap{}, &corev1.Service{}, &corev1.Secret{},
	&corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{},
}

// watchedType tells whether obj is of a kind in memberWatched (and so in every member's
// cache).
func watchedType(obj client.Object) bool {
	t := reflect.TypeOf(obj)
	for _, w := range memberWatched {
		if reflect.TypeOf(w) == t {
			return true
		}
	}
	return false
}

var clusterScopedKinds = map[schema.GroupVersionKind]bool{
	render.GVKComputeClass: true,
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}:        true,
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"}: true,
}

// MemberSync keeps one member cluster holding the objects a FleetInferenceService
// renders to, for the share status.placement gives that cluster, and reports the outcome
// as the cluster's status entry (placement writes it, see Reports). Its requests are per
// (service, member): the request's ClusterName is the member, so a slow or failing member
// delays and re-queues only itself. Sharding the hub by member (multicluster-runtime's
// sharded coordinator) splits exactly these requests.
type MemberSync struct {
	Hub      client.Client
	Clusters fleet.ClusterGetter
	Registry *fleet.Registry
	Recorder events.EventRecorder
	// Monitor, when set, tells which members' API servers answer.
	Monitor *fleet.Monitor
	// Clock records when the hub first saw each generation (shared with placement).
	Clock *GenerationClock
	// Reports takes each cluster's outcome to placement, which writes it (shared).
	Reports *Reports
	// ClusterTimeout bounds the work on one member.
	ClusterTimeout time.Duration
	// Resync re-checks members for drift in kinds that are not watched.
	Resync time.Duration
	// Workers is how many (service, member) syncs run at once (DefaultMemberSyncWorkers
	// when zero).
	Workers int
	// PerMember is how many of those may sync to one member at once (DefaultSyncsPerMember
	// when zero). Each member's syncs then run in the order they were queued, and a
	// member that hangs holds only PerMember workers.
	PerMember int
	// Now is the clock for status times (tests pin it).
	Now func() time.Time
	// SkipNameValidation lets several hubs run in one process (tests).
	SkipNameValidation bool

	// pruned maps "<uid>/<cluster>" to the fingerprint of the last desired set pruned
	// against; "" once this hub has started syncing the pair, until its first prune.
	pruned sync.Map
	// inventories serve each pair's first prune.
	inventories inventories
}

// DefaultMemberSyncWorkers is how many (service, member) syncs run at once by default.
const DefaultMemberSyncWorkers = 32

// DefaultSyncsPerMember is how many of them may sync to one member at once by default.
const DefaultSyncsPerMember = 8

// clusterResult is the outcome of syncing one member.
type clusterResult struct {
	status  v1alpha1.ClusterStatus
	applied []string
	pruned  []string
	err     error
	reason  string
	// pending: the hub is still connecting; the last recorded state stands.
	pending bool
	// capacity: how many model-server pods the cluster placed and could not place.
	capacity podCapacity
}

// Reconcile syncs one FleetInferenceService to one member, as placement decided.
func (r *MemberSync) Reconcile(ctx context.Context, req mcreconcile.Request) (reconcile.Result, error) {
	defer func(start time.Time) {
		reconcileDuration.WithLabelValues("member-sync").Observe(time.Since(start).Seconds())
	}(time.Now())
	name := string(req.ClusterName)
	if name == "" {
		return reconcile.Result{}, nil
	}
	logger := log.FromContext(ctx).WithValues("service", req.NamespacedName, "cluster", name)
	svc := &v1alpha1.FleetInferenceService{}
	if err := r.Hub.Get(ctx, req.NamespacedName, svc); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	prev, had := r.Reports.Latest(svc, name)
	if !svc.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, svc, name, prev, had)
	}
	placement := svc.Status.Placement
	if placement == nil || placement.ObservedGeneration != svc.Generation {
		// Placement has not decided for this generation yet; its decision wakes us.
		return reconcile.Result{}, nil
	}
	d, placed := placement.Decision(name)
	if !placed {
		return r.remove(ctx, svc, name, prev, had)
	}
	if d.Reason == v1alpha1.PlacementNotRegistered {
		r.Reports.Put(svc, name, &v1alpha1.ClusterStatus{
			Name: name, ObservedGeneration: svc.Generation, Reason: ReasonNotRegistered, Message: d.Message,
		})
		return reconcile.Result{}, nil
	}
	c, registered, err := r.cluster(ctx, name)
	if err != nil || !registered {
		// Unregistered since the decision: placement decides again.
		return reconcile.Result{}, err
	}
	desired := svc.DeepCopy()
	v1alpha1.SetDefaults(desired)
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
	var res clusterResult
	if reach, known := r.reachability(name); known && !reach.Reachable {
		// The monitor sees it down: do not wait out a timeout per reconcile.
		res = unreachableResult(c, d.Replicas, reach.Reason)
	} else {
		withdraw := d.FailedOver() && desired.Spec.Gateway.Provider == v1alpha1.ProviderGKE
		res = r.syncCluster(ctx, desired, c, d.Replicas, token, withdraw)
	}
	if ctx.Err() != nil {
		// Stopping: what this reconcile saw may be the shutdown itself.
		return reconcile.Result{}, ctx.Err()
	}
	entry := r.entry(svc, d, prev, had, res)
	r.observePropagation(svc, res)
	r.Reports.Put(svc, name, &entry)
	switch {
	case res.pending && had:
		// A restarted hub connecting to a member it has a record of: nothing happened
		// there, so nothing is said.
	case res.err != nil:
		clusterEvent(r.Recorder, r.Registry, svc, name, corev1.EventTypeWarning, res.reason, "Sync", "%s: %v", name, res.err)
	case len(res.applied) > 0 || len(res.pruned) > 0:
		clusterEvent(r.Recorder, r.Registry, svc, name, corev1.EventTypeNormal, ReasonSynced, "Sync", "%s: applied %s%s", name, listSummary(res.applied), prunedNote(res.pruned))
	}
	logger.V(1).Info("synced", "replicas", d.Replicas, "applied", len(res.applied))
	if res.err != nil {
		// The failure is in the cluster's entry; retry with the workqueue's backoff.
		return reconcile.Result{}, fmt.Errorf("%s not in sync: %w", name, res.err)
	}
	if res.capacity.unschedulable > 0 {
		// Nothing the hub watches changes while pods wait for nodes: read again soon, to
		// see the cluster autoscaler's verdict on them (and the pods scheduled) before
		// spillover.after runs out.
		return reconcile.Result{RequeueAfter: min(r.Resync, capacityRecheck)}, nil
	}
	return reconcile.Result{RequeueAfter: r.Resync}, nil
}

// applyParallelism bounds the applies one (service, member) sync has in flight: a
// service's objects reach a member in about the time of its slowest apply, not the sum.
const applyParallelism = 8

// applyResult is one object's apply.
type applyResult struct {
	out  Outcome
	live *unstructured.Unstructured
	err  error
}

// applyAll applies objs to one member, applyParallelism at a time, and returns each
// one's outcome in order. Kinds the member cache holds are checked against it first.
// A role binding waits only for the Role (or ClusterRole) it grants, when that role is
// one of objs: a binding to a role not there yet is refused to a hub that may not bind
// any role. Bindings are started after everything else, so none holds a slot its role
// waits for.
func applyAll(ctx context.Context, c client.Client, cache client.Reader, svc *v1alpha1.FleetInferenceService, objs []client.Object) []applyResult {
	out := make([]applyResult, len(objs))
	granted := map[string]chan struct{}{}
	var order, bindings []int
	for i, obj := range objs {
		switch obj.(type) {
		case *rbacv1.RoleBinding, *rbacv1.ClusterRoleBinding:
			bindings = append(bindings, i)
			continue
		case *rbacv1.Role, *rbacv1.ClusterRole:
			granted[roleKey(obj)] = make(chan struct{})
		}
		order = append(order, i)
	}
	var g errgroup.Group
	g.SetLimit(applyParallelism)
	for _, i := range append(order, bindings...) {
		g.Go(func() error {
			obj := objs[i]
			if role, ok := granted[grantedKey(obj)]; ok {
				select {
				case <-role:
				case <-ctx.Done():
				}
			}
			if role, ok := granted[roleKey(obj)]; ok {
				defer close(role)
			}
			var cached client.Reader
			if watchedType(obj) {
				cached = cache
			}
			a := &out[i]
			a.out, a.live, a.err = applyOwned(ctx, c, cached, svc, obj)
			return nil
		})
	}
	_ = g.Wait()
	return out
}

// roleKey names a Role or ClusterRole as grantedKey names the role a binding grants
// ("" for other kinds).
func roleKey(obj client.Object) string {
	switch obj.(type) {
	case *rbacv1.Role:
		return "Role/" + obj.GetNamespace() + "/" + obj.GetName()
	case *rbacv1.ClusterRole:
		return "ClusterRole//" + obj.GetName()
	}
	return ""
}

// grantedKey names the role a RoleBinding or ClusterRoleBinding grants ("" for other
// kinds).
func grantedKey(obj client.Object) string {
	switch b := obj.(type) {
	case *rbacv1.RoleBinding:
		if b.RoleRef.Kind == "Role" {
			return "Role/" + b.Namespace + "/" + b.RoleRef.Name
		}
		return "ClusterRole//" + b.RoleRef.Name
	case *rbacv1.ClusterRoleBinding:
		return "ClusterRole//" + b.RoleRef.Name
	}
	return ""
}

// capacityRecheck is how often a cluster with unschedulable model-server pods is read.
const capacityRecheck = 10 * time.Second

// reachability is the monitor's view of a cluster; known is false without a monitor or
// before its first probe.
func (r *MemberSync) reachability(name string) (fleet.Reachability, bool) {
	if r.Monitor == nil {
		return fleet.Reachability{}, false
	}
	return r.Monitor.Get(name)
}

// cluster returns a registered cluster's record.
func (r *MemberSync) cluster(ctx context.Context, name string) (fleet.Cluster, bool, error) {
	all, err := r.Registry.List(ctx)
	if err != nil {
		return fleet.Cluster{}, false, err
	}
	for _, c := range all {
		if c.Name == name {
			return c, true, nil
		}
	}
	return fleet.Cluster{}, false, nil
}

// entry builds the cluster's status entry from a sync's outcome: health (with the time
// it last changed), the decision's share, and what the sync found.
func (r *MemberSync) entry(svc *v1alpha1.FleetInferenceService, d v1alpha1.ClusterDecision, prev v1alpha1.ClusterStatus, had bool, res clusterResult) v1alpha1.ClusterStatus {
	if res.pending && had {
		// Connecting (a restarted hub): the recorded entry stands as it is, until the
		// member is read again. Its generation and share say whether it is current.
		return *prev.DeepCopy()
	}
	st := res.status
	st.ObservedGeneration = svc.Generation
	st.Reason = ReasonSynced
	if res.err != nil {
		st.Reason = res.reason
	}
	st.DesiredReplicas, st.FailedOver = d.Replicas, d.FailedOver()
	if st.ScaledBy != "" {
		// The member's autoscaler sets them: what it asks for is what readiness is measured by.
		st.DesiredReplicas = res.status.DesiredReplicas
	}
	if st.LastSyncTime == nil && had {
		st.LastSyncTime = prev.LastSyncTime
	}
	if st.LastSyncTime == nil && res.err == nil {
		// In sync, but the write that recorded the apply was lost.
		now := metav1.NewTime(r.Now().UTC().Truncate(time.Second))
		st.LastSyncTime = &now
	}
	if res.pending {
		// Health and since stay as recorded.
		return st
	}
	h := fleet.HealthOf(st.Reachable, res.capacity.unschedulable > 0)
	since := r.Now()
	if had && h == prev.Health && prev.HealthSince != nil {
		since = prev.HealthSince.Time
	}
	if h == v1alpha1.Unreachable {
		// The loss dates from the first sign of it, whoever saw it first: a failed sync
		// here, or the monitor's first failed probe (which a restarted hub takes up from
		// the registration).
		if reach, known := r.reachability(st.Name); known && !reach.Reachable && reach.Since.Before(since) {
			since = reach.Since
		}
	}
	st.Health = h
	t := metav1.NewTime(since.UTC().Truncate(time.Second))
	st.HealthSince = &t
	switch h {
	case v1alpha1.Unreachable:
		st.HealthReason = st.Message
	case v1alpha1.Degraded:
		st.HealthReason = res.capacity.why
	default:
		st.HealthReason = ""
	}
	if !st.Reachable {
		st.ReadyReplicas = 0
	}
	for _, state := range []v1alpha1.ClusterHealth{v1alpha1.Healthy, v1alpha1.Degraded, v1alpha1.Unreachable} {
		v := 0.0
		if state == h {
			v = 1
		}
		serviceClusterHealth.WithLabelValues(svc.Namespace, svc.Name, st.Name, string(state)).Set(v)
	}
	desiredReplicas.WithLabelValues(svc.Namespace, svc.Name, st.Name).Set(float64(st.DesiredReplicas))
	readyReplicas.WithLabelValues(svc.Namespace, svc.Name, st.Name).Set(float64(st.ReadyReplicas))
	return st
}

// forgetPair drops what the hub holds about a (service, member) pair it cleaned. Synced
// again later, the pair lists for its prune (its inventory may predate the cleanup).
func (r *MemberSync) forgetPair(svc *v1alpha1.FleetInferenceService, name string) {
	r.pruned.Delete(string(svc.UID) + "/" + name)
}

// remove cleans a cluster placement no longer selects, if the service may have objects
// there: its entry says so, or this hub synced it (a status write that recorded it may
// have lost a race with a spec change that moved the service away). A cluster no longer
// registered cannot be reached: its entry goes, its objects stay.
func (r *MemberSync) remove(ctx context.Context, svc *v1alpha1.FleetInferenceService, name string, prev v1alpha1.ClusterStatus, had bool) (reconcile.Result, error) {
	_, synced := r.pruned.Load(string(svc.UID) + "/" + name)
	if !had && !synced {
		return reconcile.Result{}, nil
	}
	if _, registered, err := r.cluster(ctx, name); err != nil {
		return reconcile.Result{}, err
	} else if !registered {
		// Its objects stay there, unknown to any inventory taken before they were made.
		r.forgetPair(svc, name)
		r.inventories.forget(name)
		r.Reports.Put(svc, name, nil)
		return reconcile.Result{}, nil
	}
	deleted, err := r.cleanCluster(ctx, svc, name)
	if err != nil {
		st := prev
		st.Name, st.DesiredReplicas, st.ObservedGeneration, st.Reason = name, 0, svc.Generation, ReasonCleanupBlocked
		st.Message = fmt.Sprintf("no longer selected; cleanup pending: %v", err)
		r.Reports.Put(svc, name, &st)
		return reconcile.Result{}, err
	}
	if len(deleted) > 0 {
		clusterEvent(r.Recorder, r.Registry, svc, name, corev1.EventTypeNormal, ReasonCleanedUp, "Cleanup", "removed %d objects from %s (no longer selected)", len(deleted), name)
	}
	r.Reports.Put(svc, name, nil)
	return reconcile.Result{}, nil
}

// finalize removes the service's objects from one member (unless the user chose to orphan
// them) and records that in the cluster's entry, which placement waits for before it
// releases the finalizer.
func (r *MemberSync) finalize(ctx context.Context, svc *v1alpha1.FleetInferenceService, name string, prev v1alpha1.ClusterStatus, had bool) (reconcile.Result, error) {
	if !controllerutil.ContainsFinalizer(svc, Finalizer) || svc.Spec.DeletionPolicy == v1alpha1.DeletionOrphan {
		return reconcile.Result{}, nil
	}
	if had && prev.Reason == ReasonCleanedUp {
		return reconcile.Result{}, nil
	}
	if _, registered, err := r.cluster(ctx, name); err != nil || !registered {
		return reconcile.Result{}, err
	}
	st := v1alpha1.ClusterStatus{Name: name, ObservedGeneration: svc.Generation}
	if had {
		st.Region, st.Reachable, st.Health, st.HealthSince, st.LastSyncTime = prev.Region, prev.Reachable, prev.Health, prev.HealthSince, prev.LastSyncTime
	}
	deleted, err := r.cleanCluster(ctx, svc, name)
	if len(deleted) > 0 {
		clusterEvent(r.Recorder, r.Registry, svc, name, corev1.EventTypeNormal, ReasonCleanedUp, "Cleanup", "removed %d objects from %s", len(deleted), name)
	}
	if err != nil {
		st.Reason, st.Message = ReasonCleanupBlocked, err.Error()
		r.Reports.Put(svc, name, &st)
		return reconcile.Result{}, err
	}
	st.Reason, st.Message = ReasonCleanedUp, fmt.Sprintf("removed %d objects", len(deleted))
	r.Reports.Put(svc, name, &st)
	return reconcile.Result{}, nil
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
			return pendingResult(c, replicas)
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
	if hpa, n := replicasScaler(ctx, mc, cl.GetAPIReader(), svc, replicas); hpa != "" {
		// The member's own HPA sets the model Deployment's replicas: leave them to it.
		res.status.ScaledBy, res.status.DesiredReplicas = "HorizontalPodAutoscaler/"+hpa, n
		for _, obj := range objs {
			if d, ok := obj.(*appsv1.Deployment); ok && d.Name == svc.Name {
				d.Spec.Replicas = nil
			}
		}
	}
	keep := map[string]bool{}
	var conflicts []string
	pruneKey := string(svc.UID) + "/" + c.Name
	prunedFor, known := r.pruned.LoadOrStore(pruneKey, "")
	results := applyAll(ctx, mc, cl.GetCache(), svc, objs)
	for i, obj := range objs {
		out, live, err := results[i].out, results[i].live, results[i].err
		gvk := obj.GetObjectKind().GroupVersionKind()
		keep[kindKey(gvk, client.ObjectKeyFromObject(obj))] = true
		switch {
		case IsConflict(err):
			conflicts = append(conflicts, err.Error())
			continue
		case errors.As(err, new(*NotServedError)):
			return fail(ReasonSyncFailed, fmt.Errorf("%s: %w", c.Name, err))
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
	// Pruning lists every kind the hub may own: only once per set of objects (and once
	// after the hub starts), since only a changed set leaves objects behind. The first
	// time, from the member's inventory, listed once for every service.
	if !known || prunedFor != fp {
		var deleted []string
		var err error
		if !known {
			var owned map[string][]ownedRef
			if owned, err = r.inventories.of(ctx, cl.GetAPIReader(), c.Name, svc.Namespace); err == nil {
				deleted, err = deleteListed(ctx, mc, owned[svc.Name], keep)
			}
		} else {
			deleted, err = deleteOwned(ctx, mc, svc, render.RoleMember, memberKinds, clusterScopedKinds, keep)
		}
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
		res.capacity = readCapacity(ctx, cl.GetAPIReader(), svc)
		if res.capacity.unschedulable > 0 {
			res.status.ScheduledReplicas = res.capacity.scheduled
			res.status.UnschedulableReplicas = res.capacity.unschedulable
			res.status.ScaleUp = res.capacity.scaleUp
		}
	}
	return res
}

// replicasScaler names the member's HorizontalPodAutoscaler that scales the service's
// model Deployment, with the replicas it set, when the live Deployment runs other than
// the share (an HPA that never changed them leaves nothing to defer to). Its writes moved
// the replicas field's ownership to it, so leaving the field out of the hub's apply keeps
// its value. HPAs are read only then, from the member's API server, so that no member
// needs to let the hub watch them; a member that does not let it read them has none.
func replicasScaler(ctx context.Context, c client.Reader, live client.Reader, svc *v1alpha1.FleetInferenceService, share int32) (string, int32) {
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: svc.Namespace, Name: svc.Name}, d); err != nil ||
		!render.OwnedBy(d, svc) || d.Spec.Replicas == nil || *d.Spec.Replicas == share {
		return "", 0
	}
	var hpas autoscalingv2.HorizontalPodAutoscalerList
	if err := live.List(ctx, &hpas, client.InNamespace(svc.Namespace)); err != nil {
		log.FromContext(ctx).V(1).Info("cannot read HorizontalPodAutoscalers", "namespace", svc.Namespace, "error", err.Error())
		return "", 0
	}
	for _, h := range hpas.Items {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind == "Deployment" && ref.Name == svc.Name && strings.HasPrefix(ref.APIVersion, "apps/") {
			return h.Name, *d.Spec.Replicas
		}
	}
	return "", 0
}

// podCapacity is how many of a service's model-server pods a member placed on nodes and
// how many it cannot schedule, why, and what the cluster autoscaler said of them.
type podCapacity struct {
	scheduled, unschedulable int32
	why                      string
	scaleUp                  v1alpha1.ScaleUpState
}

// scaleUpReasons are the cluster autoscaler's events on a pod it was asked to make room
// for.
var scaleUpReasons = map[string]v1alpha1.ScaleUpState{
	"TriggeredScaleUp":  v1alpha1.ScaleUpTriggered,
	"NotTriggerScaleUp": v1alpha1.ScaleUpNotTriggered,
	"FailedScaleUp":     v1alpha1.ScaleUpFailed,
}

// scaleUpPods is how many unschedulable pods' events are read for the cluster
// autoscaler's word: the pods of one Deployment wait on the same node pools.
const scaleUpPods = 3

// readCapacity counts the service's model-server pods in a member that are on a node and
// that cannot be scheduled (the sign that the cluster is out of accelerators), and reads
// the cluster autoscaler's latest event on the latter.
func readCapacity(ctx context.Context, r client.Reader, svc *v1alpha1.FleetInferenceService) podCapacity {
	var out podCapacity
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(svc.Namespace), client.MatchingLabels(render.ModelLabels(svc))); err != nil {
		return out
	}
	var pending []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Spec.NodeName != "" {
			out.scheduled++
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				out.unschedulable++
				pending = append(pending, p.Name)
				if out.why == "" {
					out.why = fmt.Sprintf("pod %s unschedulable: %s", p.Name, c.Message)
				}
			}
		}
	}
	var latest time.Time
	for _, name := range pending[:min(len(pending), scaleUpPods)] {
		var events corev1.EventList
		if err := r.List(ctx, &events, client.InNamespace(svc.Namespace),
			client.MatchingFields{"involvedObject.kind": "Pod", "involvedObject.name": name}); err != nil {
			log.FromContext(ctx).V(1).Info("cannot read the pod's events", "pod", name, "error", err.Error())
			break
		}
		for _, e := range events.Items {
			state, ok := scaleUpReasons[e.Reason]
			if at := eventTime(e); ok && at.After(latest) {
				latest, out.scaleUp = at, state
				out.why = fmt.Sprintf("pod %s unschedulable: %s: %s", name, e.Reason, e.Message)
			}
		}
	}
	return out
}

// eventTime is when an event last happened.
func eventTime(e corev1.Event) time.Time {
	t := e.CreationTimestamp.Time
	for _, c := range []time.Time{e.FirstTimestamp.Time, e.LastTimestamp.Time, e.EventTime.Time} {
		if c.After(t) {
			t = c
		}
	}
	if e.Series != nil && e.Series.LastObservedTime.After(t) {
		t = e.Series.LastObservedTime.Time
	}
	return t
}

// pendingResult is a cluster the hub is still connecting to (its last recorded status
// stands).
func pendingResult(c fleet.Cluster, share int32) clusterResult {
	st := v1alpha1.ClusterStatus{Name: c.Name, Region: c.Region, DesiredReplicas: share}
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

// ensureNamespace applies the service's namespace in a member when it is missing, with
// server-side apply under the hub's field manager, marked so that only a namespace the
// hub created is ever deleted by it. A namespace someone else created is left as it is.
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
	// No token controller is assumed: pods need the default ServiceAccount to exist.
	for _, obj := range render.Namespace(svc) {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{Object: m}
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager)); err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), client.ObjectKeyFromObject(u), err)
		}
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
	r.forgetPair(svc, name)
	released, err := releaseNamespace(ctx, c, cl.GetAPIReader(), svc.Namespace, func(o *unstructured.Unstructured) bool {
		return o.GetLabels()[render.LabelService] == svc.Name && o.GetLabels()[render.LabelRole] != render.RoleConfig
	})
	if err != nil {
		return deleted, fmt.Errorf("%s: %w", name, err)
	}
	if released {
		deleted = append(deleted, "Namespace "+svc.Namespace)
	}
	return deleted, nil
}

// SetupWithManager watches, for requests per (service, member): services in the hub
// (fanned out to the clusters they are or were placed on), registrations and token
// Secrets, and the owned objects in every member (with that member's name).
func (r *MemberSync) SetupWithManager(mgr mcmanager.Manager) error {
	if r.Reports == nil {
		return errors.New("member sync needs the Reports placement writes")
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.ClusterTimeout == 0 {
		r.ClusterTimeout = DefaultMemberTimeout
	}
	if r.Resync == 0 {
		r.Resync = 5 * time.Minute
	}
	if r.Clock == nil {
		r.Clock = &GenerationClock{}
	}
	if r.Workers == 0 {
		r.Workers = DefaultMemberSyncWorkers
	}
	if r.PerMember == 0 {
		r.PerMember = DefaultSyncsPerMember
	}
	opts := controllerOptions(r.SkipNameValidation)
	opts.MaxConcurrentReconciles = r.Workers
	opts.NewQueue = func(name string, limiter workqueue.TypedRateLimiter[mcreconcile.Request]) workqueue.TypedRateLimitingInterface[mcreconcile.Request] {
		inner := priorityqueue.New(name, func(o *priorityqueue.Opts[mcreconcile.Request]) {
			o.RateLimiter, o.Log = limiter, log.Log.WithValues("controller", name)
		})
		return fleet.NewClusterQueue(inner, func(req mcreconcile.Request) string { return string(req.ClusterName) }, r.PerMember)
	}
	local := []mcbuilder.WatchesOption{mcbuilder.WithEngageWithLocalCluster(true), mcbuilder.WithEngageWithProviderClusters(false)}
	members := []mcbuilder.WatchesOption{mcbuilder.WithEngageWithLocalCluster(false), mcbuilder.WithEngageWithProviderClusters(true)}
	b := mcbuilder.ControllerManagedBy(mgr).
		Named("member-sync").
		WithOptions(opts).
		Watches(&v1alpha1.FleetInferenceService{}, r.serviceHandler(), append(local, mcbuilder.WithPredicates(memberInputsChanged))...).
		Watches(&corev1.Secret{}, r.secretHandler(), local...)
	for _, obj := range memberWatched {
		b = b.Watches(obj, ownerHandler, members...)
	}
	return b.Complete(r)
}

// memberInputsChanged passes the service updates member sync acts on: the spec, the
// placement decision, deletion and finalizers. The per-cluster entries placement writes
// for it do not wake every member again.
var memberInputsChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*v1alpha1.FleetInferenceService)
	n, ok2 := e.ObjectNew.(*v1alpha1.FleetInferenceService)
	if !ok1 || !ok2 {
		return true
	}
	return o.Generation != n.Generation || !n.DeletionTimestamp.Equal(o.DeletionTimestamp) ||
		!equality.Semantic.DeepEqual(o.Status.Placement, n.Status.Placement) ||
		!equality.Semantic.DeepEqual(o.Finalizers, n.Finalizers) ||
		!equality.Semantic.DeepEqual(o.Annotations, n.Annotations)
}}

// requests are the member-sync requests of one service: every cluster it is placed on or
// has an entry for, and while it is being deleted, every registered cluster.
func (r *MemberSync) requests(ctx context.Context, svc *v1alpha1.FleetInferenceService) []mcreconcile.Request {
	names := map[string]bool{}
	if svc.Status.Placement != nil {
		for _, d := range svc.Status.Placement.Clusters {
			names[d.Name] = true
		}
	}
	for _, c := range svc.Status.Clusters {
		names[c.Name] = true
	}
	if !svc.DeletionTimestamp.IsZero() {
		if all, err := r.Registry.List(ctx); err == nil {
			for _, c := range all {
				names[c.Name] = true
			}
		}
	}
	r.pruned.Range(func(k, _ any) bool {
		if uid, cluster, ok := strings.Cut(k.(string), "/"); ok && uid == string(svc.UID) {
			names[cluster] = true
		}
		return true
	})
	out := make([]mcreconcile.Request, 0, len(names))
	for _, n := range fleet.SortedNames(names) {
		out = append(out, mcreconcile.Request{ClusterName: multicluster.ClusterName(n), Request: reconcile.Request{NamespacedName: types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}}})
	}
	return out
}

// serviceHandler fans a service out to its clusters.
func (r *MemberSync) serviceHandler() mchandler.TypedEventHandlerFunc[client.Object, mcreconcile.Request] {
	return func(_ multicluster.ClusterName, _ cluster.Cluster) handler.TypedEventHandler[client.Object, mcreconcile.Request] {
		return mchandler.TypedEnqueueRequestsFromMapFuncWithClusterPreservation(func(ctx context.Context, obj client.Object) []mcreconcile.Request {
			svc, ok := obj.(*v1alpha1.FleetInferenceService)
			if !ok {
				return nil
			}
			return r.requests(ctx, svc)
		})
	}
}

// ownerHandler maps an owned member object to its service in the hub, for that member.
func ownerHandler(member multicluster.ClusterName, _ cluster.Cluster) handler.TypedEventHandler[client.Object, mcreconcile.Request] {
	return mchandler.TypedEnqueueRequestsFromMapFuncWithClusterPreservation(func(_ context.Context, obj client.Object) []mcreconcile.Request {
		l := obj.GetLabels()
		if l[render.LabelManagedBy] != render.ManagedBy || l[render.LabelService] == "" {
			return nil
		}
		return []mcreconcile.Request{{ClusterName: member, Request: reconcile.Request{NamespacedName: types.NamespacedName{Namespace: l[render.LabelNamespace], Name: l[render.LabelService]}}}}
	})
}

// secretHandler maps a cluster's registration Secret to every service, for that cluster,
// and a token Secret to the services in its namespace that name it, for each of their
// clusters.
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
			for i := range list.Items {
				s := &list.Items[i]
				if registration {
					out = append(out, mcreconcile.Request{ClusterName: multicluster.ClusterName(obj.GetName()), Request: reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}}})
					continue
				}
				if ref := s.Spec.Model.Server.HuggingFaceTokenSecretRef; ref != nil && ref.Name == obj.GetName() {
					out = append(out, r.requests(ctx, s)...)
				}
			}
			return out
		})
	}
}

// observePropagation records, once per generation and cluster, how long the generation
// took from first sight to applied there; and counts failed syncs.
func (r *MemberSync) observePropagation(svc *v1alpha1.FleetInferenceService, res clusterResult) {
	if res.err != nil {
		if !res.pending {
			applyErrors.WithLabelValues(res.status.Name, res.reason).Inc()
		}
		return
	}
	if d, first := r.Clock.Reached(svc, res.status.Name, r.Now()); first {
		propagation.WithLabelValues(res.status.Name).Observe(d.Seconds())
	}
}
