package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	mcbuilder "sigs.k8s.io/multicluster-runtime/pkg/builder"
	mchandler "sigs.k8s.io/multicluster-runtime/pkg/handler"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"
	mcreconcile "sigs.k8s.io/multicluster-runtime/pkg/reconcile"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
)

// Finalizer holds a FleetInferenceService until its objects are gone from every member.
const Finalizer = "fleet.inferfleet.dev/cleanup"

// Placement decides, once per service, where its replicas run: it selects clusters from
// the registry, splits the replicas by weight, and applies the failover policy to what
// member sync last recorded (fleet.Place, fleet.Observe, fleet.Decide). The decision goes
// to status.placement, which member sync follows cluster by cluster; the per-cluster
// outcomes come back through Reports, and placement writes them into status.clusters in
// the same status write as its decision and their rollup into the service's conditions.
// It also holds the cleanup finalizer until every member reports clean.
type Placement struct {
	Hub client.Client
	// APIReader, when set, reads a service from the API server after a write of
	// placement's conflicted with another's, so it decides again at once.
	APIReader client.Reader
	Registry  *fleet.Registry
	Recorder  events.EventRecorder
	// Monitor, when set, tells which members' API servers answer.
	Monitor *fleet.Monitor
	// Clock records when the hub first saw each generation (shared with member sync).
	Clock *GenerationClock
	// Reports brings member sync's outcomes, which placement writes (shared).
	Reports *Reports
	// Loads brings the model servers' load, on which services with spec.autoscaling are
	// scaled (shared with the KVCacheReader that reads it).
	Loads *Loads
	// Resync re-decides at least this often.
	Resync time.Duration
	// Now is the clock for status times (tests pin it).
	Now func() time.Time
	// SkipNameValidation lets several hubs run in one process (tests).
	SkipNameValidation bool

	scales scaleStates
}

// Reconcile decides one service's placement and rolls up its per-cluster status.
func (r *Placement) Reconcile(ctx context.Context, req mcreconcile.Request) (reconcile.Result, error) {
	return serviceStep{name: "placement", hub: r.Hub, fresh: r.APIReader, finalizer: Finalizer, finalize: r.finalize, sync: r.place, gone: r.gone}.run(ctx, req)
}

// gone forgets what placement holds about a service that no longer exists.
func (r *Placement) gone(key types.NamespacedName) {
	r.Reports.forget(key)
	if r.Loads != nil {
		r.Loads.forget(key)
	}
	autoscalerDesired.DeleteLabelValues(key.Namespace, key.Name)
	for _, g := range []*prometheus.GaugeVec{spilledReplicas, borrowedReplicas} {
		g.DeletePartialMatch(prometheus.Labels{"namespace": key.Namespace, "service": key.Name})
	}
}

// place writes the members' outcomes waiting in Reports, the decision, and the rollup, in
// one status write.
func (r *Placement) place(ctx context.Context, svc *v1alpha1.FleetInferenceService) (reconcile.Result, error) {
	before := svc.Status.DeepCopy()
	version := svc.ResourceVersion
	taken := r.Reports.merge(svc)
	res, err := r.decide(ctx, svc, before)
	if err != nil {
		return res, err
	}
	if len(taken) > 0 && svc.ResourceVersion == version {
		// New outcomes (each differs from the one reported before it), yet nothing to
		// write: this copy may predate the write of the outcomes before them (the cache
		// lags its own writes), and so already show the new ones. Taken as written, they
		// would never be: decide again on the stored service.
		if err := r.current(ctx, svc); err != nil {
			return reconcile.Result{}, err
		}
	}
	r.Reports.written(svc.UID, taken)
	return res, nil
}

// current returns a conflict when svc is not the stored version of the service (nil
// without an APIReader to tell).
func (r *Placement) current(ctx context.Context, svc *v1alpha1.FleetInferenceService) error {
	if r.APIReader == nil {
		return nil
	}
	stored := &v1alpha1.FleetInferenceService{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(svc), stored); err != nil {
		return err
	}
	if stored.ResourceVersion != svc.ResourceVersion {
		gr := schema.GroupResource{Group: v1alpha1.GroupVersion.Group, Resource: "fleetinferenceservices"}
		return apierrors.NewConflict(gr, svc.Name, fmt.Errorf("read at resourceVersion %s, stored at %s", svc.ResourceVersion, stored.ResourceVersion))
	}
	return nil
}

func (r *Placement) decide(ctx context.Context, svc *v1alpha1.FleetInferenceService, before *v1alpha1.FleetInferenceServiceStatus) (reconcile.Result, error) {
	now := r.Now()
	r.Clock.Seen(svc, now)
	desired := svc.DeepCopy()
	v1alpha1.SetDefaults(desired)
	invalid := func(err error) (reconcile.Result, error) {
		// Nothing is placed anew: members keep what they have until the spec is fixed.
		setCondition(svc, now, v1alpha1.ConditionPropagated, metav1.ConditionFalse, ReasonInvalidSpec, err.Error())
		summarizeReady(svc, now)
		return reconcile.Result{}, writeStatus(ctx, r.Hub, svc, before)
	}
	if err := desired.Validate(); err != nil {
		return invalid(err)
	}
	all, err := r.Registry.List(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	desired.Spec.Replicas = r.autoscale(svc, desired, now)
	p, err := fleet.Place(desired, all)
	if err != nil {
		return reconcile.Result{}, err
	}
	var names []string
	for _, c := range p.Selected {
		names = append(names, c.Name)
	}
	if err := v1alpha1.RegionalClusters(desired, names); err != nil && len(names) > 1 {
		// A regional Gateway serves one cluster's pool: a selector that finds several is
		// the user's to fix.
		return invalid(err)
	}
	obs := fleet.Observe(desired, p.Selected, r.reach())
	plan := fleet.Decide(desired, p, obs, now)
	prev := svc.Status.Placement
	svc.Status.Placement = fleet.Record(svc, p, plan, obs, prev, now)
	r.showUnreachable(svc)
	failoverCondition(svc, now)
	rollup(svc, now)
	summarizeReady(svc, now)
	if err := writeStatus(ctx, r.Hub, svc, before); err != nil {
		return reconcile.Result{}, err
	}
	// Moves are announced once the status that records them is written: a move whose
	// write failed is decided again and must not count twice.
	r.announce(svc, prev, obs)
	log.FromContext(ctx).V(1).Info("placed", "service", client.ObjectKeyFromObject(svc), "shares", plan.Shares)
	requeue := r.Resync
	if plan.RecheckAfter > 0 && plan.RecheckAfter < requeue {
		requeue = plan.RecheckAfter
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}

// markUnreachable records in a cluster's entry what the monitor sees of it, so that a
// lost member is not shown as it was (while the service runs, or is being deleted). An
// entry already unreachable keeps its reason and date, unless the monitor saw the loss
// earlier.
func (r *Placement) markUnreachable(svc *v1alpha1.FleetInferenceService, name string, reach fleet.Reachability) {
	since := metav1.NewTime(reach.Since.Truncate(time.Second))
	for i := range svc.Status.Clusters {
		e := &svc.Status.Clusters[i]
		if e.Name != name {
			continue
		}
		if !e.Reachable && e.Health == v1alpha1.Unreachable {
			if e.HealthSince != nil && since.Before(e.HealthSince) {
				e.HealthSince = &since
			}
			continue
		}
		e.Reachable, e.Health = false, v1alpha1.Unreachable
		e.HealthSince = &since
		e.HealthReason = reach.Reason
	}
}

// showUnreachable makes the entries of the members the monitor cannot reach say so at
// once, with the share the decision now gives them. Member sync's own report on such a
// member waits on its requests to it timing out (a hung API server answers nothing).
func (r *Placement) showUnreachable(svc *v1alpha1.FleetInferenceService) {
	if svc.Status.Placement == nil {
		return
	}
	for _, d := range svc.Status.Placement.Clusters {
		reach, known := r.reachOf(d.Name)
		if !known || reach.Reachable {
			continue
		}
		r.markUnreachable(svc, d.Name, reach)
		for i := range svc.Status.Clusters {
			if e := &svc.Status.Clusters[i]; e.Name == d.Name {
				e.DesiredReplicas, e.FailedOver = d.Replicas, d.FailedOver()
			}
		}
	}
}

// reachOf is the monitor's view of one cluster (known is false without a monitor).
func (r *Placement) reachOf(name string) (fleet.Reachability, bool) {
	if r.Monitor == nil {
		return fleet.Reachability{}, false
	}
	return r.Monitor.Get(name)
}

func (r *Placement) reach() fleet.Reachabilities {
	if r.Monitor == nil {
		return nil
	}
	return r.Monitor
}

// announce emits the failover and failback events and counters of the decision just
// written, against the previous one.
func (r *Placement) announce(svc *v1alpha1.FleetInferenceService, prev *v1alpha1.PlacementStatus, obs map[string]fleet.Observed) {
	for _, d := range svc.Status.Placement.Clusters {
		was := obs[d.Name].FailedOver
		if old, ok := prev.Decision(d.Name); ok {
			was = old.FailedOver()
		}
		switch {
		case d.FailedOver() && !was:
			failovers.WithLabelValues(svc.Namespace, svc.Name, d.Name).Inc()
			clusterEvent(r.Recorder, r.Registry, svc, d.Name, corev1.EventTypeWarning, ReasonFailingOver, "Failover", "%s failed over (%s): its %d replicas now run in %s",
				d.Name, d.Message, obs[d.Name].Desired, sharesText(svc.Status.Placement, d.Name))
		case !d.FailedOver() && was && d.Reason != v1alpha1.PlacementNotRegistered:
			failbacks.WithLabelValues(svc.Namespace, svc.Name, d.Name).Inc()
			clusterEvent(r.Recorder, r.Registry, svc, d.Name, corev1.EventTypeNormal, ReasonFailedBack, "Failback", "%s is back: %d replicas return to it", d.Name, d.Replicas)
		}
		old, _ := prev.Decision(d.Name)
		switch {
		case d.Spilled > old.Spilled:
			spills.WithLabelValues(svc.Namespace, svc.Name, d.Name).Inc()
			clusterEvent(r.Recorder, r.Registry, svc, d.Name, corev1.EventTypeWarning, ReasonSpilled, "Spill", "%s is out of capacity: %s", d.Name, d.Message)
		case d.Spilled < old.Spilled && d.Spilled == 0:
			clusterEvent(r.Recorder, r.Registry, svc, d.Name, corev1.EventTypeNormal, ReasonCapacityBack, "Spill", "%s has room again: its %d spilled replicas return to it", d.Name, old.Spilled)
		case d.Spilled < old.Spilled:
			clusterEvent(r.Recorder, r.Registry, svc, d.Name, corev1.EventTypeNormal, ReasonCapacityBack, "Spill", "%s has room for %d more: %d of its replicas still run elsewhere", d.Name, old.Spilled-d.Spilled, d.Spilled)
		}
		spilledReplicas.WithLabelValues(svc.Namespace, svc.Name, d.Name).Set(float64(d.Spilled))
		borrowedReplicas.WithLabelValues(svc.Namespace, svc.Name, d.Name).Set(float64(d.Borrowed))
	}
}

// finalize releases the finalizer once every registered member reports its objects gone
// (member sync cleans each one and says so in its entry), or at once for
// deletionPolicy Orphan. An unreachable member holds the finalizer until it returns.
func (r *Placement) finalize(ctx context.Context, svc *v1alpha1.FleetInferenceService) (reconcile.Result, error) {
	if !controllerutil.ContainsFinalizer(svc, Finalizer) {
		return reconcile.Result{}, nil
	}
	before := svc.Status.DeepCopy()
	taken := r.Reports.merge(svc)
	// The members' cleanup, for users to see while they wait.
	write := func() error {
		if err := writeStatus(ctx, r.Hub, svc, before); err != nil {
			return err
		}
		if taken != nil {
			r.Reports.written(svc.UID, taken)
		}
		return nil
	}
	if svc.Spec.DeletionPolicy != v1alpha1.DeletionOrphan {
		all, err := r.Registry.List(ctx)
		if err != nil {
			return reconcile.Result{}, err
		}
		var waiting, blocked []string
		for _, c := range all {
			e, ok := svc.Status.Cluster(c.Name)
			if ok && e.Reason == ReasonCleanedUp {
				continue
			}
			why := c.Name
			if reach, known := r.reachOf(c.Name); known && !reach.Reachable {
				why += " (unreachable: " + reach.Reason + ")"
				if ok {
					r.markUnreachable(svc, c.Name, reach)
				}
			}
			if ok && e.Reason == ReasonCleanupBlocked {
				blocked = append(blocked, c.Name+": "+e.Message)
			}
			waiting = append(waiting, why)
		}
		if len(blocked) > 0 {
			serviceEvent(r.Recorder, svc, corev1.EventTypeWarning, ReasonCleanupBlocked, "Cleanup", "waiting for members to clean up (set spec.deletionPolicy: Orphan to skip): %s", strings.Join(blocked, "; "))
		}
		if len(waiting) > 0 {
			// Whatever ran before, the service is going: Ready says what it waits for.
			setCondition(svc, r.Now(), v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonDeleting,
				"being deleted: waiting for its objects to be removed from "+strings.Join(waiting, ", ")+
					" (the hub never deletes in a member it cannot reach; set spec.deletionPolicy: Orphan to leave them)")
			if err := write(); err != nil {
				return reconcile.Result{}, client.IgnoreNotFound(err)
			}
			// Member sync's entries wake this up; the requeue is a safety net.
			return reconcile.Result{RequeueAfter: 5 * time.Second}, nil
		}
	}
	if err := write(); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if err := removeFinalizer(ctx, r.Hub, svc, Finalizer); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	r.Clock.Forget(svc)
	r.Reports.forgetUID(svc.UID)
	r.scales.forget(svc.UID)
	return reconcile.Result{}, nil
}

// SetupWithManager watches services, the outcomes member sync reports, and the cluster
// registrations.
func (r *Placement) SetupWithManager(mgr mcmanager.Manager) error {
	if r.Reports == nil {
		return errors.New("placement needs the Reports member sync fills")
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Resync == 0 {
		r.Resync = 5 * time.Minute
	}
	if r.Clock == nil {
		r.Clock = &GenerationClock{}
	}
	opts := controllerOptions(r.SkipNameValidation)
	opts.MaxConcurrentReconciles = placementWorkers
	local := []mcbuilder.WatchesOption{mcbuilder.WithEngageWithLocalCluster(true), mcbuilder.WithEngageWithProviderClusters(false)}
	b := mcbuilder.ControllerManagedBy(mgr).
		Named("placement").
		WithOptions(opts).
		Watches(&v1alpha1.FleetInferenceService{}, mchandler.EnqueueRequestForObject, append(local, mcbuilder.WithPredicates(placementInputsChanged))...).
		WatchesRawSource(r.Reports.source()).
		Watches(&corev1.Secret{}, r.registrationHandler(), local...)
	if r.Loads != nil {
		b = b.WatchesRawSource(r.Loads.source())
	}
	return b.Complete(r)
}

// placementWorkers is how many services placement decides at once.
const placementWorkers = 8

// placementInputsChanged passes the service updates placement decides on: the spec,
// deletion, finalizers, labels and annotations (a drill's cordon). Status is not among
// them: the members' outcomes come through Reports, batched, and waking on its own writes
// (or routing's) would write each outcome on its own.
var placementInputsChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	o, n := e.ObjectOld, e.ObjectNew
	return o.GetGeneration() != n.GetGeneration() || !equality.Semantic.DeepEqual(o.GetDeletionTimestamp(), n.GetDeletionTimestamp()) ||
		!equality.Semantic.DeepEqual(o.GetFinalizers(), n.GetFinalizers()) ||
		!equality.Semantic.DeepEqual(o.GetLabels(), n.GetLabels()) ||
		!equality.Semantic.DeepEqual(o.GetAnnotations(), n.GetAnnotations())
}}

// rollupDelay gathers the outcomes members report about the same time (every member
// syncs a change at once) into one status write.
const rollupDelay = 200 * time.Millisecond

// serviceStep is what every service-level reconcile does around its own work: time it,
// fetch the service, finalize it once it is being deleted, else hold its finalizer on it
// before anything is written for it.
type serviceStep struct {
	name      string
	hub       client.Client
	finalizer string
	finalize  func(context.Context, *v1alpha1.FleetInferenceService) (reconcile.Result, error)
	sync      func(context.Context, *v1alpha1.FleetInferenceService) (reconcile.Result, error)
	// gone, when set, hears of a service that no longer exists.
	gone func(types.NamespacedName)
	// fresh, when set, reads the service from the API server after a write conflicted.
	fresh client.Reader
}

// conflictRetries is how many times a step runs again on a freshly read service after a
// write of its conflicted (placement and route sync write the same service), before it
// leaves the newer version to come through its cache.
const conflictRetries = 3

func (s serviceStep) run(ctx context.Context, req mcreconcile.Request) (reconcile.Result, error) {
	defer func(start time.Time) {
		reconcileDuration.WithLabelValues(s.name).Observe(time.Since(start).Seconds())
	}(time.Now())
	svc := &v1alpha1.FleetInferenceService{}
	if err := s.hub.Get(ctx, req.NamespacedName, svc); err != nil {
		if apierrors.IsNotFound(err) && s.gone != nil {
			s.gone(req.NamespacedName)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	for try := 0; ; try++ {
		res, err := s.once(ctx, svc)
		if !apierrors.IsConflict(err) {
			return res, err
		}
		// The service changed since it was read: decide again on its newer version, read
		// from the API server (the cache may not hold it yet), rather than wait for it.
		if s.fresh == nil || try == conflictRetries {
			return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
		}
		svc = &v1alpha1.FleetInferenceService{}
		if err := s.fresh.Get(ctx, req.NamespacedName, svc); err != nil {
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
	}
}

func (s serviceStep) once(ctx context.Context, svc *v1alpha1.FleetInferenceService) (reconcile.Result, error) {
	if !svc.DeletionTimestamp.IsZero() {
		return s.finalize(ctx, svc)
	}
	if err := ensureFinalizer(ctx, s.hub, svc, s.finalizer); err != nil {
		return reconcile.Result{}, err
	}
	return s.sync(ctx, svc)
}

// registrationHandler maps a cluster registration to every service.
func (r *Placement) registrationHandler() mchandler.TypedEventHandlerFunc[client.Object, mcreconcile.Request] {
	return func(_ multicluster.ClusterName, _ cluster.Cluster) handler.TypedEventHandler[client.Object, mcreconcile.Request] {
		return mchandler.TypedEnqueueRequestsFromMapFuncWithClusterPreservation(func(ctx context.Context, obj client.Object) []mcreconcile.Request {
			if !r.Registry.Registers(obj) {
				return nil
			}
			var list v1alpha1.FleetInferenceServiceList
			if err := r.Hub.List(ctx, &list); err != nil {
				return nil
			}
			out := make([]mcreconcile.Request, 0, len(list.Items))
			for _, s := range list.Items {
				out = append(out, mcreconcile.Request{Request: reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}}})
			}
			return out
		})
	}
}

// serviceEvent records an event about the service.
func serviceEvent(rec events.EventRecorder, svc *v1alpha1.FleetInferenceService, typ, reason, action, note string, args ...any) {
	if rec != nil {
		rec.Eventf(svc, nil, typ, reason, action, note, args...)
	}
}

// clusterEvent records an event about what happened in one member cluster, related to the
// member's registration Secret. The event recorder folds events with the same regarding
// object, reason, action and related object into one series that keeps the first note: with
// the cluster as the related object, each member's events keep their own note instead of
// counting under another member's.
func clusterEvent(rec events.EventRecorder, reg *fleet.Registry, svc *v1alpha1.FleetInferenceService, cluster, typ, reason, action, note string, args ...any) {
	if rec == nil {
		return
	}
	ns := fleet.RegistrationNamespace
	if reg != nil && reg.Namespace != "" {
		ns = reg.Namespace
	}
	related := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Name: cluster, Namespace: ns}}
	rec.Eventf(svc, related, typ, reason, action, note, args...)
}

// GenerationClock remembers when the hub first saw each service generation, so member
// sync can tell how long a generation took to reach each cluster. Memory stays bounded:
// one entry per service, and one per service and cluster.
type GenerationClock struct {
	mu         sync.Mutex
	firstSeen  map[types.UID]seenAt
	propagated map[string]int64
}

type seenAt struct {
	gen int64
	at  time.Time
}

// Seen records now as the first sight of svc's generation, unless it was seen already.
func (c *GenerationClock) Seen(svc *v1alpha1.FleetInferenceService, now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.firstSeen == nil {
		c.firstSeen, c.propagated = map[types.UID]seenAt{}, map[string]int64{}
	}
	s, ok := c.firstSeen[svc.UID]
	if !ok || s.gen != svc.Generation {
		s = seenAt{gen: svc.Generation, at: now}
		c.firstSeen[svc.UID] = s
	}
	return s.at
}

// Reached returns, the first time svc's generation is reported applied in cluster, how
// long it took since first sight; false after that.
func (c *GenerationClock) Reached(svc *v1alpha1.FleetInferenceService, cluster string, now time.Time) (time.Duration, bool) {
	first := c.Seen(svc, now)
	c.mu.Lock()
	defer c.mu.Unlock()
	key := string(svc.UID) + "/" + cluster
	if gen, ok := c.propagated[key]; ok && gen == svc.Generation {
		return 0, false
	}
	c.propagated[key] = svc.Generation
	return now.Sub(first), true
}

// Forget drops a deleted service's entries.
func (c *GenerationClock) Forget(svc *v1alpha1.FleetInferenceService) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.firstSeen, svc.UID)
	prefix := string(svc.UID) + "/"
	for k := range c.propagated {
		if strings.HasPrefix(k, prefix) {
			delete(c.propagated, k)
		}
	}
}
