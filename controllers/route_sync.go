package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	infv1alpha1 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	mcbuilder "sigs.k8s.io/multicluster-runtime/pkg/builder"
	mchandler "sigs.k8s.io/multicluster-runtime/pkg/handler"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"
	mcreconcile "sigs.k8s.io/multicluster-runtime/pkg/reconcile"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/fleet"
)

// RoutesFinalizer holds a service until its config-cluster objects are gone and the
// shared Gateway no longer counts it.
const RoutesFinalizer = "fleet.inferfleet.dev/routes"

// Reasons of the RoutesProgrammed condition.
const (
	ReasonRoutesProgrammed    = "Programmed"
	ReasonAwaitingController  = "AwaitingGatewayController"
	ReasonGatewayNotAccepted  = "GatewayNotProgrammed"
	ReasonRouteNotAccepted    = "RouteNotAccepted"
	ReasonGatewayConflict     = "GatewayConflict"
	ReasonGatewayClassClash   = "GatewayClassMismatch"
	ReasonConfigApplyFailed   = "ConfigApplyFailed"
	ReasonInvalidForRouting   = "InvalidSpec"
	gatewayStatusWaitedReason = "Pending"
)

// configKinds are the kinds a service may own in the config cluster.
var configKinds = []schema.GroupVersionKind{
	gwv1.SchemeGroupVersion.WithKind("HTTPRoute"),
	render.GVKHealthCheckPolicy,
	render.GVKGCPBackendPolicy,
	render.GVKInferencePoolImport,
}

// RouteSync keeps the config cluster (where the hub runs) serving every service through
// one cross-region Gateway: the shared Gateway, each service's HTTPRoute and policies, and
// for the open-source provider the InferencePoolImports and the members' Exported status.
type RouteSync struct {
	Hub client.Client
	// APIReader, when set, reads a service from the API server after a write of route
	// sync's conflicted with another's, so it decides again at once.
	APIReader client.Reader
	Clusters  fleet.ClusterGetter
	Registry  *fleet.Registry
	Recorder  events.EventRecorder
	Now       func() time.Time
	// MemberTimeout bounds writing pool status into one member.
	MemberTimeout time.Duration
	// SkipNameValidation lets several hubs run in one process (tests).
	SkipNameValidation bool
}

// Reconcile syncs one service's config-cluster objects and the Gateway it names.
func (r *RouteSync) Reconcile(ctx context.Context, req mcreconcile.Request) (reconcile.Result, error) {
	return serviceStep{name: "route-sync", hub: r.Hub, fresh: r.APIReader, finalizer: RoutesFinalizer, finalize: r.finalize, sync: r.sync}.run(ctx, req)
}

func (r *RouteSync) sync(ctx context.Context, svc *v1alpha1.FleetInferenceService) (reconcile.Result, error) {
	desired := svc.DeepCopy()
	v1alpha1.SetDefaults(desired)
	before := svc.Status.DeepCopy()
	if err := desired.Validate(); err != nil {
		setCondition(svc, r.Now(), v1alpha1.ConditionRoutesProgrammed, metav1.ConditionFalse, ReasonInvalidForRouting, err.Error())
		summarizeReady(svc, r.Now())
		return reconcile.Result{}, writeStatus(ctx, r.Hub, svc, before)
	}

	all, err := r.Registry.List(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	at, err := gatewayClusterOf(desired, all)
	if err != nil {
		// A regional service whose selector finds other than one cluster: nothing to route.
		setCondition(svc, r.Now(), v1alpha1.ConditionRoutesProgrammed, metav1.ConditionFalse, ReasonInvalidForRouting, err.Error())
		summarizeReady(svc, r.Now())
		return reconcile.Result{}, writeStatus(ctx, r.Hub, svc, before)
	}
	var applyErr error
	if prev := recordedGatewayCluster(svc); prev != at {
		if applyErr = r.release(ctx, svc, at); applyErr != nil {
			applyErr = fmt.Errorf("remove routes from %s: %w", clusterLabel(prev), applyErr)
		} else {
			// Record where the routes go before anything is written there: should this
			// write lose a race, nothing was applied, and the retry starts from the same
			// record. Written after, a spec change could move the service away before the
			// record landed, and leave the objects behind. The rest of the status
			// (observed generation included) is written once the routes are.
			if err := r.Hub.Status().Update(ctx, svc); err != nil {
				return reconcile.Result{}, fmt.Errorf("record the routes' cluster: %w", err)
			}
			before = svc.Status.DeepCopy()
		}
	}
	var tgt gatewayTarget
	if applyErr == nil {
		tgt, applyErr = r.target(ctx, at)
	}
	reason := ReasonConfigApplyFailed
	var gwIn render.GatewayInput
	if applyErr == nil {
		gwIn, applyErr = r.gatewayInput(ctx, at, desired.Namespace, desired.Spec.Gateway.Name, nil, all)
	}
	if applyErr == nil {
		applyErr = r.applyGateway(ctx, tgt.c, gwIn)
	}
	if applyErr == nil && gwIn.ClassName != desired.Spec.Gateway.ClassName {
		reason = ReasonGatewayClassClash
		applyErr = fmt.Errorf("gateway %s has class %s (from the oldest service sharing it), this service names %s", gwIn.Name, gwIn.ClassName, desired.Spec.Gateway.ClassName)
	}
	if applyErr == nil {
		applyErr = r.applyServiceObjects(ctx, tgt.c, desired, gwIn)
	}
	if IsConflict(applyErr) {
		reason = ReasonGatewayConflict
	}
	if applyErr == nil {
		r.observeRoutes(ctx, tgt, svc, desired)
		if desired.Spec.Gateway.Provider == v1alpha1.ProviderInferencePoolImport && at == render.ConfigClusterKey {
			applyErr = r.syncImport(ctx, desired)
		}
	} else {
		setCondition(svc, r.Now(), v1alpha1.ConditionRoutesProgrammed, metav1.ConditionFalse, reason, applyErr.Error())
	}
	summarizeReady(svc, r.Now())
	if err := writeStatus(ctx, r.Hub, svc, before); err != nil {
		return reconcile.Result{}, err
	}
	if applyErr != nil {
		r.event(svc, corev1.EventTypeWarning, ReasonConfigApplyFailed, "Route", "%v", applyErr)
		return reconcile.Result{}, applyErr
	}
	if at != render.ConfigClusterKey && !meta.IsStatusConditionTrue(svc.Status.Conditions, v1alpha1.ConditionRoutesProgrammed) {
		// Member Gateways are not watched: look again for the Gateway controller's report.
		return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
	}
	return reconcile.Result{RequeueAfter: 5 * time.Minute}, nil
}

// gatewayTarget is the cluster that holds a service's Gateway and routes.
type gatewayTarget struct {
	// name is render.ConfigClusterKey for the config cluster, else the member's name.
	name string
	c    client.Client
	// live reads a member without its cache (nil for the config cluster).
	live client.Reader
}

// target returns the client of the cluster named by a gateway cluster name.
func (r *RouteSync) target(ctx context.Context, name string) (gatewayTarget, error) {
	if name == render.ConfigClusterKey {
		return gatewayTarget{name: name, c: r.Hub}, nil
	}
	cl, err := r.Clusters.GetCluster(ctx, multicluster.ClusterName(name))
	if err != nil {
		return gatewayTarget{}, fmt.Errorf("member %s, which holds the regional Gateway, is not connected: %w", name, err)
	}
	return gatewayTarget{name: name, c: cl.GetClient(), live: cl.GetAPIReader()}, nil
}

// gatewayClusterOf places svc in the fleet and names the cluster that holds its Gateway.
func gatewayClusterOf(svc *v1alpha1.FleetInferenceService, all []fleet.Cluster) (string, error) {
	p, err := fleet.Place(svc, all)
	if err != nil {
		return "", err
	}
	var names []string
	for _, c := range p.Selected {
		names = append(names, c.Name)
	}
	return render.GatewayCluster(svc, names)
}

// recordedGatewayCluster is the cluster the status says holds svc's routes.
func recordedGatewayCluster(svc *v1alpha1.FleetInferenceService) string {
	if svc.Status.Gateway == nil {
		return render.ConfigClusterKey
	}
	return svc.Status.Gateway.Cluster
}

// release removes svc's routes from the cluster that held them when that is no longer at
// (the service changed mode or its regional member), and shrinks or removes the Gateway
// it shared there.
func (r *RouteSync) release(ctx context.Context, svc *v1alpha1.FleetInferenceService, at string) error {
	if err := r.releaseFrom(ctx, svc, recordedGatewayCluster(svc)); err != nil {
		return err
	}
	svc.Status.Gateway = &v1alpha1.GatewayStatus{Cluster: at}
	return nil
}

// releaseFrom deletes svc's config-role objects in one cluster and recomputes the shared
// Gateway there without svc.
func (r *RouteSync) releaseFrom(ctx context.Context, svc *v1alpha1.FleetInferenceService, cluster string) error {
	all, err := r.Registry.List(ctx)
	if err != nil {
		return err
	}
	if cluster != render.ConfigClusterKey && !slices.ContainsFunc(all, func(c fleet.Cluster) bool { return c.Name == cluster }) {
		// The member left the fleet: the hub no longer reaches it to clean up.
		return nil
	}
	tgt, err := r.target(ctx, cluster)
	if err != nil {
		return err
	}
	if _, err := deleteOwned(ctx, tgt.c, svc, render.RoleConfig, configKinds, nil, nil); err != nil {
		return err
	}
	name := svc.Spec.Gateway.Name
	if name == "" {
		name = v1alpha1.DefaultGatewayName
	}
	in, err := r.gatewayInput(ctx, cluster, svc.Namespace, name, &svc.UID, all)
	if err != nil {
		return err
	}
	if err := r.applyGateway(ctx, tgt.c, in); err != nil && !IsConflict(err) {
		return err
	}
	if tgt.live != nil {
		// The member's namespace may have outlived the service's model servers only
		// because of the Gateway's body-based router, which is gone once no service on
		// the Gateway routes on the body.
		if _, err := releaseNamespace(ctx, tgt.c, tgt.live, svc.Namespace, func(*unstructured.Unstructured) bool { return false }); err != nil {
			return err
		}
	}
	return nil
}

func clusterLabel(name string) string {
	if name == render.ConfigClusterKey {
		return "the config cluster"
	}
	return "member " + name
}

// gatewayInput gathers the services whose Gateway is name in the cluster at (oldest
// first), except skip, with the regions each is placed in.
func (r *RouteSync) gatewayInput(ctx context.Context, at, ns, name string, skip *types.UID, all []fleet.Cluster) (render.GatewayInput, error) {
	var list v1alpha1.FleetInferenceServiceList
	if err := r.Hub.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return render.GatewayInput{}, err
	}
	var sharing []*v1alpha1.FleetInferenceService
	regions := map[string][]string{}
	for i := range list.Items {
		s := list.Items[i].DeepCopy()
		v1alpha1.SetDefaults(s)
		if s.Spec.Gateway.Name != name || !s.DeletionTimestamp.IsZero() || (skip != nil && s.UID == *skip) || s.Validate() != nil {
			continue
		}
		p, err := fleet.Place(s, all)
		if err != nil {
			continue
		}
		var names []string
		for _, c := range p.Selected {
			regions[s.Name] = append(regions[s.Name], c.Region)
			names = append(names, c.Name)
		}
		if where, err := render.GatewayCluster(s, names); err != nil || where != at {
			continue
		}
		sharing = append(sharing, s)
	}
	sort.SliceStable(sharing, func(i, j int) bool {
		a, b := sharing[i].CreationTimestamp, sharing[j].CreationTimestamp
		if !a.Equal(&b) {
			return a.Before(&b)
		}
		return sharing[i].Name < sharing[j].Name
	})
	in := render.NewGatewayInput(sharing, regions)
	in.Name, in.Namespace = name, ns
	return in, nil
}

// sharedKinds are the kinds of the objects services share on one Gateway: the Gateway and
// the body-based router.
var sharedKinds = []schema.GroupVersionKind{
	gwv1.SchemeGroupVersion.WithKind("Gateway"),
	{Version: "v1", Kind: "ServiceAccount"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"},
	{Version: "v1", Kind: "Service"},
	{Group: "apps", Version: "v1", Kind: "Deployment"},
	render.GVKGCPRoutingExtension,
	render.GVKHealthCheckPolicy,
}

// applyGateway writes the objects the services on one Gateway share (the Gateway, and the
// body-based router when one of them asks for it) and deletes those no service needs any
// more: all of them once no service names the Gateway. Objects of those names that the hub
// did not create are never touched (ConflictError).
func (r *RouteSync) applyGateway(ctx context.Context, c client.Client, in render.GatewayInput) error {
	ours := func(live client.Object) bool {
		l := live.GetLabels()
		return l[render.LabelManagedBy] == render.ManagedBy && l[render.LabelGateway] == in.Name && l[render.LabelService] == ""
	}
	var objs []client.Object
	if in.ClassName != "" {
		objs = render.GatewayObjects(in)
	}
	keep, applyErr := applySet(ctx, c, objs, ours)
	if applyErr != nil && !IsConflict(applyErr) {
		return applyErr
	}
	sel := client.MatchingLabels{render.LabelManagedBy: render.ManagedBy, render.LabelGateway: in.Name, render.LabelRole: render.RoleConfig}
	if _, err := deleteUnkept(ctx, c, sel, in.Namespace, sharedKinds, nil, keep, ours); err != nil {
		return err
	}
	return applyErr
}

// applyServiceObjects writes the service's HTTPRoute and policies and removes the ones it
// no longer needs (switching provider, say).
func (r *RouteSync) applyServiceObjects(ctx context.Context, c client.Client, svc *v1alpha1.FleetInferenceService, gw render.GatewayInput) error {
	keep, applyErr := applySet(ctx, c, render.ConfigCluster(svc, gw), func(live client.Object) bool { return render.OwnedBy(live, svc) })
	if applyErr != nil && !IsConflict(applyErr) {
		return applyErr
	}
	if _, err := deleteOwned(ctx, c, svc, render.RoleConfig, configKinds, nil, keep); err != nil {
		return err
	}
	return applyErr
}

// observeRoutes copies the Gateway's addresses and sets RoutesProgrammed from what a
// Gateway controller reported on the Gateway and the service's HTTPRoute.
func (r *RouteSync) observeRoutes(ctx context.Context, tgt gatewayTarget, svc, desired *v1alpha1.FleetInferenceService) {
	if tgt.name != render.ConfigClusterKey {
		svc.Status.Gateway = &v1alpha1.GatewayStatus{Cluster: tgt.name}
	} else {
		svc.Status.Gateway = nil
	}
	gw := &gwv1.Gateway{}
	if err := tgt.c.Get(ctx, client.ObjectKey{Namespace: svc.Namespace, Name: desired.Spec.Gateway.Name}, gw); err != nil {
		setCondition(svc, r.Now(), v1alpha1.ConditionRoutesProgrammed, metav1.ConditionUnknown, ReasonAwaitingController, fmt.Sprintf("reading gateway: %v", err))
		return
	}
	var addrs []string
	for _, a := range gw.Status.Addresses {
		addrs = append(addrs, a.Value)
	}
	if len(addrs) > 0 {
		svc.Status.Gateway = &v1alpha1.GatewayStatus{Cluster: tgt.name, Addresses: addrs}
	}
	route := &gwv1.HTTPRoute{}
	if err := tgt.c.Get(ctx, client.ObjectKey{Namespace: svc.Namespace, Name: svc.Name}, route); err != nil {
		setCondition(svc, r.Now(), v1alpha1.ConditionRoutesProgrammed, metav1.ConditionUnknown, ReasonAwaitingController, fmt.Sprintf("reading route: %v", err))
		return
	}
	programmed := meta.FindStatusCondition(gw.Status.Conditions, string(gwv1.GatewayConditionProgrammed))
	var accepted *metav1.Condition
	for i := range route.Status.Parents {
		if string(route.Status.Parents[i].ParentRef.Name) == gw.Name {
			accepted = meta.FindStatusCondition(route.Status.Parents[i].Conditions, string(gwv1.RouteConditionAccepted))
		}
	}
	fresh := func(c *metav1.Condition, gen int64) bool { return c != nil && c.ObservedGeneration >= gen }
	switch {
	case !fresh(programmed, gw.Generation) && accepted == nil:
		setCondition(svc, r.Now(), v1alpha1.ConditionRoutesProgrammed, metav1.ConditionUnknown, ReasonAwaitingController,
			fmt.Sprintf("no Gateway controller has reported status for Gateway %s (class %s) yet", gw.Name, gw.Spec.GatewayClassName))
	case programmed != nil && programmed.Status == metav1.ConditionFalse:
		setCondition(svc, r.Now(), v1alpha1.ConditionRoutesProgrammed, metav1.ConditionFalse, ReasonGatewayNotAccepted,
			fmt.Sprintf("Gateway %s not programmed: %s: %s", gw.Name, programmed.Reason, programmed.Message))
	case accepted != nil && accepted.Status == metav1.ConditionFalse:
		setCondition(svc, r.Now(), v1alpha1.ConditionRoutesProgrammed, metav1.ConditionFalse, ReasonRouteNotAccepted,
			fmt.Sprintf("HTTPRoute %s not accepted: %s: %s", route.Name, accepted.Reason, accepted.Message))
	case programmed != nil && programmed.Status == metav1.ConditionTrue && accepted != nil && accepted.Status == metav1.ConditionTrue:
		setCondition(svc, r.Now(), v1alpha1.ConditionRoutesProgrammed, metav1.ConditionTrue, ReasonRoutesProgrammed,
			fmt.Sprintf("Gateway %s programmed with %d addresses; route accepted", gw.Name, len(addrs)))
	default:
		setCondition(svc, r.Now(), v1alpha1.ConditionRoutesProgrammed, metav1.ConditionUnknown, gatewayStatusWaitedReason,
			fmt.Sprintf("waiting for Gateway %s to be programmed and the route accepted", gw.Name))
	}
}

// ExportingClusters are the clusters whose pool is exported and healthy now: reachable,
// exported, and running at least one ready replica. A service that scales to zero with no
// ready replica anywhere keeps every reachable exported pool, so that the gateway still
// hands requests to its endpoint pickers: the hub sees them there and brings servers back.
func ExportingClusters(svc *v1alpha1.FleetInferenceService) []string {
	var out, reachable []string
	for _, c := range svc.Status.Clusters {
		if c.Reachable && c.Exported {
			reachable = append(reachable, c.Name)
			if c.ReadyReplicas > 0 {
				out = append(out, c.Name)
			}
		}
	}
	if len(out) == 0 && svc.Spec.ScalesToZero() {
		return reachable
	}
	return out
}

// syncImport writes the InferencePoolImport's status (the hub's controller entry) and the
// Exported condition on every member's pool.
func (r *RouteSync) syncImport(ctx context.Context, svc *v1alpha1.FleetInferenceService) error {
	imp := &infv1alpha1.InferencePoolImport{}
	if err := r.Hub.Get(ctx, client.ObjectKeyFromObject(svc), imp); err != nil {
		return fmt.Errorf("get InferencePoolImport: %w", err)
	}
	exporting := ExportingClusters(svc)
	want := render.ImportStatus(exporting)
	var controllers []infv1alpha1.ImportController
	found := false
	for _, c := range imp.Status.Controllers {
		if c.Name == render.ImportController {
			// Keep the conditions and parents others may have written under our entry.
			want.Parents, want.Conditions = c.Parents, c.Conditions
			controllers = append(controllers, want)
			found = true
			continue
		}
		controllers = append(controllers, c)
	}
	if !found {
		controllers = append(controllers, want)
	}
	if !found || !equalControllers(imp.Status.Controllers, controllers) {
		imp.Status.Controllers = controllers
		if err := r.Hub.Status().Update(ctx, imp); err != nil {
			return fmt.Errorf("update InferencePoolImport status: %w", err)
		}
	}
	exportingSet := map[string]bool{}
	for _, n := range exporting {
		exportingSet[n] = true
	}
	var errs []string
	for _, c := range svc.Status.Clusters {
		if !c.Reachable {
			continue
		}
		if err := r.markExported(ctx, svc, c.Name, exportingSet[c.Name]); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", c.Name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("pool export status: %s", strings.Join(errs, "; "))
	}
	return nil
}

func equalControllers(a, b []infv1alpha1.ImportController) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || len(a[i].ExportingClusters) != len(b[i].ExportingClusters) {
			return false
		}
		for j := range a[i].ExportingClusters {
			if a[i].ExportingClusters[j] != b[i].ExportingClusters[j] {
				return false
			}
		}
	}
	return true
}

// markExported sets the hub's parent entry (kind InferencePoolImport) with the Exported
// condition on one member's InferencePool, as the multi-cluster proposal asks.
func (r *RouteSync) markExported(ctx context.Context, svc *v1alpha1.FleetInferenceService, cluster string, exported bool) error {
	cl, err := r.Clusters.GetCluster(ctx, multicluster.ClusterName(cluster))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.MemberTimeout)
	defer cancel()
	c := cl.GetClient()
	pool := &infv1.InferencePool{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(svc), pool); err != nil {
		return client.IgnoreNotFound(err)
	}
	cond := metav1.Condition{Type: string(infv1.InferencePoolConditionExported), Status: metav1.ConditionTrue,
		Reason: string(infv1.InferencePoolReasonExported), Message: "imported into the config cluster as InferencePoolImport " + svc.Name,
		ObservedGeneration: pool.Generation}
	if !exported {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "ClusterNotHealthy", "the cluster is not serving the pool; it is out of the import's exporting clusters"
	}
	parent := infv1.ParentReference{Group: ptrGroup(infv1alpha1.GroupVersion.Group), Kind: "InferencePoolImport", Name: infv1.ObjectName(svc.Name), Namespace: infv1.Namespace(svc.Namespace)}
	idx := -1
	for i, p := range pool.Status.Parents {
		if p.ControllerName == render.ImportController {
			idx = i
		}
	}
	if idx < 0 {
		pool.Status.Parents = append(pool.Status.Parents, infv1.ParentStatus{ParentRef: parent, ControllerName: render.ImportController})
		idx = len(pool.Status.Parents) - 1
	}
	entry := &pool.Status.Parents[idx]
	old := meta.FindStatusCondition(entry.Conditions, cond.Type)
	if old != nil && old.Status == cond.Status && old.Reason == cond.Reason && old.ObservedGeneration == cond.ObservedGeneration && entry.ParentRef == parent {
		return nil
	}
	entry.ParentRef = parent
	meta.SetStatusCondition(&entry.Conditions, cond)
	return c.Status().Update(ctx, pool)
}

func ptrGroup(g string) *infv1.Group { x := infv1.Group(g); return &x }

// finalize removes the service's routes and its share of the Gateway from the cluster
// that holds them. A member holding a regional Gateway that cannot be reached keeps the
// finalizer until it returns (set spec.deletionPolicy: Orphan to skip).
func (r *RouteSync) finalize(ctx context.Context, svc *v1alpha1.FleetInferenceService) (reconcile.Result, error) {
	if !controllerutil.ContainsFinalizer(svc, RoutesFinalizer) {
		return reconcile.Result{}, nil
	}
	if svc.Spec.DeletionPolicy != v1alpha1.DeletionOrphan {
		// The status names where the routes were last recorded; the spec says where they
		// went since, should a status write have lost a race with the deletion.
		where := []string{recordedGatewayCluster(svc)}
		desired := svc.DeepCopy()
		v1alpha1.SetDefaults(desired)
		all, err := r.Registry.List(ctx)
		if err != nil {
			return reconcile.Result{}, err
		}
		if at, err := gatewayClusterOf(desired, all); err == nil && at != where[0] {
			where = append(where, at)
		}
		for _, c := range where {
			if err := r.releaseFrom(ctx, svc, c); err != nil {
				return reconcile.Result{}, fmt.Errorf("remove routes from %s: %w", clusterLabel(c), err)
			}
		}
	}
	return reconcile.Result{}, client.IgnoreNotFound(removeFinalizer(ctx, r.Hub, svc, RoutesFinalizer))
}

func (r *RouteSync) event(svc *v1alpha1.FleetInferenceService, typ, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(svc, nil, typ, reason, action, note, args...)
	}
}

// SetupWithManager watches services, their routes and Gateways in the config cluster, and
// registrations (a cluster joining changes the Gateway's regions).
func (r *RouteSync) SetupWithManager(mgr mcmanager.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.MemberTimeout == 0 {
		r.MemberTimeout = DefaultMemberTimeout
	}
	local := []mcbuilder.WatchesOption{mcbuilder.WithEngageWithLocalCluster(true), mcbuilder.WithEngageWithProviderClusters(false)}
	byGateway := func(_ multicluster.ClusterName, _ cluster.Cluster) handler.TypedEventHandler[client.Object, mcreconcile.Request] {
		return mchandler.TypedEnqueueRequestsFromMapFuncWithClusterPreservation(func(ctx context.Context, obj client.Object) []mcreconcile.Request {
			return r.servicesNaming(ctx, obj.GetNamespace(), obj.GetName())
		})
	}
	registrations := func(_ multicluster.ClusterName, _ cluster.Cluster) handler.TypedEventHandler[client.Object, mcreconcile.Request] {
		return mchandler.TypedEnqueueRequestsFromMapFuncWithClusterPreservation(func(ctx context.Context, obj client.Object) []mcreconcile.Request {
			if !r.Registry.Registers(obj) {
				return nil
			}
			return r.servicesNaming(ctx, "", "")
		})
	}
	return mcbuilder.ControllerManagedBy(mgr).
		Named("route-sync").
		WithOptions(controllerOptions(r.SkipNameValidation)).
		For(&v1alpha1.FleetInferenceService{}, mcbuilder.WithEngageWithLocalCluster(true), mcbuilder.WithEngageWithProviderClusters(false), mcbuilder.WithPredicates(routeInputsChanged)).
		Watches(&gwv1.Gateway{}, byGateway, local...).
		Watches(&gwv1.HTTPRoute{}, ownerHandler, local...).
		Watches(&corev1.Secret{}, registrations, local...).
		Complete(r)
}

// routeInputsChanged passes the service updates routing acts on: those member sync acts on,
// and a change in which clusters answer or export a ready pool (the InferencePoolImport
// and the pools' Exported condition follow them). The rest of the status placement writes
// as members report does not wake routing.
var routeInputsChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	if memberInputsChanged.Update(e) {
		return true
	}
	o, ok1 := e.ObjectOld.(*v1alpha1.FleetInferenceService)
	n, ok2 := e.ObjectNew.(*v1alpha1.FleetInferenceService)
	if !ok1 || !ok2 {
		return true
	}
	return !slices.Equal(ExportingClusters(o), ExportingClusters(n)) || !slices.Equal(reachableClusters(o), reachableClusters(n))
}}

// reachableClusters are the clusters whose entry says they answer.
func reachableClusters(svc *v1alpha1.FleetInferenceService) []string {
	var out []string
	for _, c := range svc.Status.Clusters {
		if c.Reachable {
			out = append(out, c.Name)
		}
	}
	return out
}

// servicesNaming lists the services that name a Gateway (all services when name is "").
func (r *RouteSync) servicesNaming(ctx context.Context, ns, name string) []mcreconcile.Request {
	var list v1alpha1.FleetInferenceServiceList
	var opts []client.ListOption
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := r.Hub.List(ctx, &list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "list services")
		return nil
	}
	var out []mcreconcile.Request
	for _, s := range list.Items {
		gw := s.Spec.Gateway.Name
		if gw == "" {
			gw = v1alpha1.DefaultGatewayName
		}
		if name == "" || gw == name {
			out = append(out, mcreconcile.Request{Request: reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}}})
		}
	}
	return out
}
