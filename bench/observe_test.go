package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers/render"
)

// observer watches the hub's FleetInferenceServices and the objects the hub writes in every
// member, and records when each milestone is first reached. Timings come from watch events,
// not from polling, so their resolution is the informer's delivery latency (milliseconds).
type observer struct {
	mu sync.Mutex
	// seen is when each member object (cluster|group/kind|ns/name) was first observed.
	seen map[string]time.Time
	// live counts each service's objects present in members now.
	live map[client.ObjectKey]int
	// services is the latest FleetInferenceService per key.
	services map[client.ObjectKey]*v1alpha1.FleetInferenceService
	// deployments is the latest model Deployment per cluster and service.
	deployments map[string]*unstructured.Unstructured
	waits       []*milestone

	cancelHub, cancelMembers context.CancelFunc
	membersStopped           bool
}

// milestone is a per-service predicate; the first time each service satisfies it is kept.
type milestone struct {
	name    string
	check   func(o *observer, key client.ObjectKey) bool // called with o.mu held
	pending map[client.ObjectKey]bool
	reached map[client.ObjectKey]time.Time
	done    chan struct{}
}

// memberGVKs are the kinds the hub writes in members, taken from what render.Member returns.
func memberGVKs(objs []client.Object) ([]schema.GroupVersionKind, error) {
	scheme := app.Scheme()
	seen := map[schema.GroupVersionKind]bool{}
	var out []schema.GroupVersionKind
	for _, o := range objs {
		gvk := o.GetObjectKind().GroupVersionKind()
		if gvk.Empty() {
			gvks, _, err := scheme.ObjectKinds(o)
			if err != nil {
				return nil, fmt.Errorf("kind of %T: %w", o, err)
			}
			gvk = gvks[0]
		}
		if !seen[gvk] {
			seen[gvk] = true
			out = append(out, gvk)
		}
	}
	return out, nil
}

// startObserver syncs a FleetInferenceService informer on the hub and, in every member, an
// informer per kind the hub writes (only objects labelled as managed by the hub).
func startObserver(ctx context.Context, hub *rest.Config, members map[string]*rest.Config, kinds []schema.GroupVersionKind) (*observer, error) {
	o := &observer{
		seen:        map[string]time.Time{},
		live:        map[client.ObjectKey]int{},
		services:    map[client.ObjectKey]*v1alpha1.FleetInferenceService{},
		deployments: map[string]*unstructured.Unstructured{},
	}
	hubCtx, cancelHub := context.WithCancel(ctx)
	memberCtx, cancelMembers := context.WithCancel(ctx)
	o.cancelHub, o.cancelMembers = cancelHub, cancelMembers
	fail := func(err error) (*observer, error) {
		cancelHub()
		cancelMembers()
		return nil, err
	}

	hc, err := cache.New(hub, cache.Options{Scheme: app.Scheme()})
	if err != nil {
		return fail(fmt.Errorf("hub cache: %w", err))
	}
	inf, err := hc.GetInformer(hubCtx, &v1alpha1.FleetInferenceService{})
	if err != nil {
		return fail(fmt.Errorf("hub informer: %w", err))
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { o.serviceEvent(obj, false) },
		UpdateFunc: func(_, obj any) { o.serviceEvent(obj, false) },
		DeleteFunc: func(obj any) { o.serviceEvent(obj, true) },
	}); err != nil {
		return fail(err)
	}
	go func() { _ = hc.Start(hubCtx) }()
	caches := []cache.Cache{hc}

	selector := labels.SelectorFromSet(labels.Set{render.LabelManagedBy: render.ManagedBy})
	for name, cfg := range members {
		// The harness shares the hub's process, whose memory it measures: it keeps the
		// least it can (metadata, but for the Deployments it reads).
		mc, err := cache.New(cfg, cache.Options{Scheme: app.Scheme(), DefaultLabelSelector: selector, DefaultTransform: cache.TransformStripManagedFields()})
		if err != nil {
			return fail(fmt.Errorf("%s cache: %w", name, err))
		}
		for _, gvk := range kinds {
			var obj client.Object = &metav1.PartialObjectMetadata{}
			if gvk.Kind == "Deployment" {
				obj = &unstructured.Unstructured{}
			}
			obj.GetObjectKind().SetGroupVersionKind(gvk)
			inf, err := mc.GetInformer(memberCtx, obj)
			if err != nil {
				return fail(fmt.Errorf("%s informer for %s: %w", name, gvk.Kind, err))
			}
			if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
				AddFunc:    func(obj any) { o.memberEvent(name, gvk, obj, false) },
				UpdateFunc: func(_, obj any) { o.memberEvent(name, gvk, obj, false) },
				DeleteFunc: func(obj any) { o.memberEvent(name, gvk, obj, true) },
			}); err != nil {
				return fail(err)
			}
		}
		go func() { _ = mc.Start(memberCtx) }()
		caches = append(caches, mc)
	}
	syncCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, c := range caches {
		if !c.WaitForCacheSync(syncCtx) {
			return fail(fmt.Errorf("informers did not sync"))
		}
	}
	return o, nil
}

// stopMembers stops the member informers, dropping their copies of every member object.
func (o *observer) stopMembers() {
	o.cancelMembers()
	o.mu.Lock()
	o.membersStopped = true
	o.mu.Unlock()
}

// watchesMembers reports whether the member informers still run.
func (o *observer) watchesMembers() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return !o.membersStopped
}

func (o *observer) stop() {
	o.cancelMembers()
	o.cancelHub()
}

func objectKey(cluster string, gvk schema.GroupVersionKind, ns, name string) string {
	return cluster + "|" + gvk.Group + "/" + gvk.Kind + "|" + ns + "/" + name
}

func deploymentKey(cluster string, svc client.ObjectKey) string {
	return cluster + "|" + svc.String()
}

func unwrap(obj any) any {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

func (o *observer) serviceEvent(obj any, deleted bool) {
	svc, ok := unwrap(obj).(*v1alpha1.FleetInferenceService)
	if !ok {
		return
	}
	now := time.Now()
	key := client.ObjectKeyFromObject(svc)
	o.mu.Lock()
	defer o.mu.Unlock()
	if deleted {
		delete(o.services, key)
	} else {
		o.services[key] = svc
	}
	o.evaluate(key, now)
}

func (o *observer) memberEvent(cluster string, gvk schema.GroupVersionKind, obj any, deleted bool) {
	u, ok := unwrap(obj).(metav1.Object)
	if !ok {
		return
	}
	now := time.Now()
	l := u.GetLabels()
	svc := client.ObjectKey{Namespace: l[render.LabelNamespace], Name: l[render.LabelService]}
	if svc.Name == "" {
		return
	}
	k := objectKey(cluster, gvk, u.GetNamespace(), u.GetName())
	o.mu.Lock()
	defer o.mu.Unlock()
	_, known := o.seen[k]
	switch {
	case deleted:
		if known {
			o.live[svc]--
		}
		delete(o.seen, k)
	case !known:
		o.seen[k] = now
		o.live[svc]++
	}
	// The model Deployment carries the service's own name.
	if gvk.Kind == "Deployment" && u.GetName() == svc.Name && u.GetNamespace() == svc.Namespace {
		if deleted {
			delete(o.deployments, deploymentKey(cluster, svc))
		} else if d, ok := u.(*unstructured.Unstructured); ok {
			o.deployments[deploymentKey(cluster, svc)] = d
		}
	}
	o.evaluate(svc, now)
}

// evaluate checks every milestone still pending for key. Called with o.mu held.
func (o *observer) evaluate(key client.ObjectKey, now time.Time) {
	for _, m := range o.waits {
		if !m.pending[key] || !m.check(o, key) {
			continue
		}
		delete(m.pending, key)
		m.reached[key] = now
		if len(m.pending) == 0 {
			close(m.done)
		}
	}
}

// await registers a milestone for keys; services that already satisfy it count as reached
// now.
func (o *observer) await(name string, keys []client.ObjectKey, check func(o *observer, key client.ObjectKey) bool) *milestone {
	m := &milestone{name: name, check: check, pending: map[client.ObjectKey]bool{}, reached: map[client.ObjectKey]time.Time{}, done: make(chan struct{})}
	for _, k := range keys {
		m.pending[k] = true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.waits = append(o.waits, m)
	now := time.Now()
	if len(keys) == 0 {
		close(m.done)
	}
	for _, k := range keys {
		o.evaluate(k, now)
	}
	return m
}

// wait blocks until every service reached m, or timeout; it then drops m.
func (o *observer) wait(m *milestone, timeout time.Duration) (map[client.ObjectKey]time.Time, error) {
	var err error
	select {
	case <-m.done:
	case <-time.After(timeout):
		o.mu.Lock()
		var example client.ObjectKey
		for k := range m.pending {
			example = k
			break
		}
		err = fmt.Errorf("%s: %d of %d services not there within %s (e.g. %s: %s)",
			m.name, len(m.pending), len(m.pending)+len(m.reached), timeout, example, o.describe(example))
		o.mu.Unlock()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, w := range o.waits {
		if w == m {
			o.waits = append(o.waits[:i], o.waits[i+1:]...)
			break
		}
	}
	return m.reached, err
}

// describe summarises a service's state for an error message. Called with o.mu held.
func (o *observer) describe(key client.ObjectKey) string {
	svc := o.services[key]
	if svc == nil {
		return "not in the hub"
	}
	c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionReady)
	return fmt.Sprintf("generation %d, Ready %+v, clusters %+v, member objects %d", svc.Generation, c, svc.Status.Clusters, o.live[key])
}

// Predicates over the observed state, all called with o.mu held.

// allSeen: every expected member object has been observed.
func allSeen(expected []string) func(*observer, client.ObjectKey) bool {
	return func(o *observer, _ client.ObjectKey) bool {
		for _, k := range expected {
			if _, ok := o.seen[k]; !ok {
				return false
			}
		}
		return true
	}
}

// readyAt: the hub reports Ready for generation gen (or later).
func readyAt(gen int64) func(*observer, client.ObjectKey) bool {
	return func(o *observer, key client.ObjectKey) bool {
		svc := o.services[key]
		if svc == nil || svc.Status.ObservedGeneration < gen {
			return false
		}
		c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration >= gen
	}
}

// imageIn: the model Deployment of every listed cluster runs image; with rolledOut, the
// rollout is also complete (every replica updated and ready, no old one left).
func imageIn(clusters []string, image string, rolledOut bool) func(*observer, client.ObjectKey) bool {
	return func(o *observer, key client.ObjectKey) bool {
		for _, c := range clusters {
			d := o.deployments[deploymentKey(c, key)]
			if d == nil || !hasImage(d, image) {
				return false
			}
			if rolledOut && !rolled(d) {
				return false
			}
		}
		return true
	}
}

func hasImage(d *unstructured.Unstructured, image string) bool {
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		if m, ok := c.(map[string]any); ok && m["image"] == image {
			return true
		}
	}
	return false
}

func rolled(d *unstructured.Unstructured) bool {
	want, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas")
	observed, _, _ := unstructured.NestedInt64(d.Object, "status", "observedGeneration")
	total, _, _ := unstructured.NestedInt64(d.Object, "status", "replicas")
	updated, _, _ := unstructured.NestedInt64(d.Object, "status", "updatedReplicas")
	ready, _, _ := unstructured.NestedInt64(d.Object, "status", "readyReplicas")
	return observed >= d.GetGeneration() && total == want && updated == want && ready == want
}

// shares: the hub's status gives each cluster want replicas (placement); with ready, they
// are also ready; failedOver names the cluster whose share is elsewhere (or "").
func shares(want map[string]int32, ready bool, failedOver string) func(*observer, client.ObjectKey) bool {
	return func(o *observer, key client.ObjectKey) bool {
		svc := o.services[key]
		if svc == nil {
			return false
		}
		got := map[string]v1alpha1.ClusterStatus{}
		for _, c := range svc.Status.Clusters {
			got[c.Name] = c
		}
		for name, n := range want {
			c, ok := got[name]
			if !ok || c.DesiredReplicas != n || c.FailedOver != (name == failedOver) {
				return false
			}
			if ready && n > 0 && c.ReadyReplicas < n {
				return false
			}
		}
		return true
	}
}

// movedOff: the hub has taken victim's share away (FailedOver) and placed all total
// replicas on the other clusters; with ready, they are also ready there.
func movedOff(victim string, total int32, ready bool) func(*observer, client.ObjectKey) bool {
	return func(o *observer, key client.ObjectKey) bool {
		svc := o.services[key]
		if svc == nil {
			return false
		}
		// The victim's entry is its member sync's last report, which waits on the member
		// (a hung one answers nothing until the request times out): the decision says
		// when the hub moved the share.
		d, ok := svc.Status.Placement.Decision(victim)
		if !ok || !d.FailedOver() || d.Replicas != 0 {
			return false
		}
		var placed int32
		for _, c := range svc.Status.Clusters {
			if c.Name == victim {
				continue
			}
			if c.FailedOver || (ready && c.ReadyReplicas < c.DesiredReplicas) {
				return false
			}
			placed += c.DesiredReplicas
		}
		return placed == total
	}
}

// spilledOff: victim, reachable, keeps only the replica it leaves requested and the hub has
// placed all total replicas on the other clusters; with ready, they are also ready there.
func spilledOff(victim string, total int32, ready bool) func(*observer, client.ObjectKey) bool {
	return func(o *observer, key client.ObjectKey) bool {
		svc := o.services[key]
		if svc == nil {
			return false
		}
		d, ok := svc.Status.Placement.Decision(victim)
		if !ok || d.Reason != v1alpha1.PlacementOutOfCapacity || d.Replicas != 1 {
			return false
		}
		var placed int32
		for _, c := range svc.Status.Clusters {
			if c.Name == victim {
				continue
			}
			if c.FailedOver || (ready && c.ReadyReplicas < c.DesiredReplicas) {
				return false
			}
			placed += c.DesiredReplicas
		}
		return placed == total
	}
}

// spilledBack: the hub gives victim its share n again, nothing spilled.
func spilledBack(victim string, n int32) func(*observer, client.ObjectKey) bool {
	return func(o *observer, key client.ObjectKey) bool {
		svc := o.services[key]
		if svc == nil {
			return false
		}
		d, ok := svc.Status.Placement.Decision(victim)
		return ok && d.Spilled == 0 && d.Replicas == n && shareOn(victim, n)(o, key)
	}
}

// shareOn: the hub gives cluster its share n again and no longer counts it failed over.
func shareOn(cluster string, n int32) func(*observer, client.ObjectKey) bool {
	return func(o *observer, key client.ObjectKey) bool {
		svc := o.services[key]
		if svc == nil {
			return false
		}
		for _, c := range svc.Status.Clusters {
			if c.Name == cluster {
				return c.DesiredReplicas == n && !c.FailedOver
			}
		}
		return false
	}
}

// goneFromHub: the service is no longer in the hub. Its finalizer holds it until its objects
// are gone from every member, so this also means the members are clean.
func goneFromHub(o *observer, key client.ObjectKey) bool { return o.services[key] == nil }

// gone is goneFromHub, and the member informers have seen every object of the service go.
func gone(o *observer, key client.ObjectKey) bool {
	return o.services[key] == nil && o.live[key] <= 0
}

// scaledTo: the autoscaler set the service's total to n and placement split all of it;
// with ready, every cluster runs its share ready. servers > 0 also wants every metric read
// from that many servers.
func scaledTo(n int32, ready bool, servers int32) func(*observer, client.ObjectKey) bool {
	return func(o *observer, key client.ObjectKey) bool {
		svc := o.services[key]
		if svc == nil || svc.Status.Autoscaling == nil || svc.Status.Autoscaling.DesiredReplicas != n ||
			svc.Status.Placement == nil || svc.Status.Placement.ObservedGeneration != svc.Generation {
			return false
		}
		if servers > 0 {
			for _, m := range svc.Status.Autoscaling.Metrics {
				if m.Servers != servers {
					return false
				}
			}
		}
		var placed, running int32
		for _, d := range svc.Status.Placement.Clusters {
			placed += d.Replicas
		}
		for _, c := range svc.Status.Clusters {
			if ready && c.ReadyReplicas != c.DesiredReplicas {
				return false
			}
			running += c.DesiredReplicas
		}
		return placed == n && running == n
	}
}
