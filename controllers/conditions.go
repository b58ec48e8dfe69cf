package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers/render"
)

// Reasons used in conditions, per-cluster status and events.
const (
	ReasonSynced          = "Synced"
	ReasonSyncing         = "Syncing"
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
	ReasonDeleting        = "Deleting"
	ReasonConnecting      = "Connecting"

	// Reasons of the FailingOver condition and its events.
	ReasonFailingOver     = "ClusterUnhealthy"
	ReasonCordoned        = "Cordoned"
	ReasonAllServing      = "AllClustersServing"
	ReasonFailedBack      = "FailedBack"
	ReasonCapacityMissing = "ReplicasUnplaceable"

	// Reasons of spillover events.
	ReasonSpilled      = "Spilled"
	ReasonCapacityBack = "CapacityBack"
)

// setCondition sets one condition for the service's current generation.
func setCondition(svc *v1alpha1.FleetInferenceService, now time.Time, typ string, status metav1.ConditionStatus, reason, msg string) {
	setConditionOn(&svc.Status.Conditions, svc.Generation, now, typ, status, reason, msg)
}

// setConditionOn sets one condition of an object (a service, a drill) for its generation;
// the transition time changes only with the status.
func setConditionOn(conds *[]metav1.Condition, generation int64, now time.Time, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: generation,
		LastTransitionTime: metav1.NewTime(now.UTC().Truncate(time.Second)),
	})
}

// rollup sets the fleet totals, Propagated and Degraded from the placement decision and
// each cluster's entry. A cluster counts as in sync once its entry reports the current
// generation synced with the share placement gave it.
func rollup(svc *v1alpha1.FleetInferenceService, now time.Time) {
	var desiredTotal, readyTotal int32
	selected, readyClusters := 0, 0
	var unreachable, conflicts, failed, failedOver, connecting, syncing, missing []string
	for _, d := range svc.Status.Placement.Clusters {
		if d.Reason == v1alpha1.PlacementNotRegistered {
			missing = append(missing, d.Name)
			continue
		}
		selected++
		e, ok := svc.Status.Cluster(d.Name)
		current := ok && e.ObservedGeneration == svc.Generation && e.DesiredReplicas == d.Replicas && e.FailedOver == d.FailedOver()
		desiredTotal += d.Replicas
		if ok {
			readyTotal += min(e.ReadyReplicas, d.Replicas)
		}
		switch {
		case current && e.Reason == ReasonSynced && e.ReadyReplicas >= d.Replicas:
			readyClusters++
		case d.FailedOver():
			// Its share runs elsewhere: Degraded and FailingOver say so, not Propagated.
			failedOver = append(failedOver, d.Name)
		case !current:
			syncing = append(syncing, d.Name)
		case e.Reason == ReasonSynced:
		case e.Reason == ReasonConnecting:
			connecting = append(connecting, d.Name)
		case e.Reason == ReasonUnreachable:
			unreachable = append(unreachable, d.Name)
		case e.Reason == ReasonConflict:
			conflicts = append(conflicts, d.Name)
		default:
			failed = append(failed, d.Name)
		}
	}
	svc.Status.Replicas = desiredTotal
	svc.Status.Selector = render.ModelSelector(svc)
	svc.Status.ReadyReplicas = readyTotal
	svc.Status.ReplicasReady = fmt.Sprintf("%d/%d", readyTotal, desiredTotal)
	svc.Status.ClustersReady = fmt.Sprintf("%d/%d", readyClusters, selected)

	set := func(status metav1.ConditionStatus, reason, msg string) {
		setCondition(svc, now, v1alpha1.ConditionPropagated, status, reason, msg)
	}
	switch {
	case selected == 0 && len(missing) > 0:
		set(metav1.ConditionFalse, ReasonNotRegistered, "selected clusters are not registered: "+strings.Join(missing, ", "))
	case selected == 0:
		set(metav1.ConditionFalse, ReasonNoClusters, "placement selects no registered cluster")
	case len(unreachable) > 0:
		set(metav1.ConditionFalse, ReasonUnreachable, "unreachable: "+strings.Join(unreachable, ", "))
	case len(conflicts) > 0:
		set(metav1.ConditionFalse, ReasonConflict, "objects owned by someone else in: "+strings.Join(conflicts, ", ")+" (see status.clusters)")
	case len(failed) > 0:
		set(metav1.ConditionFalse, ReasonSyncFailed, "sync failed in: "+strings.Join(failed, ", ")+" (see status.clusters)")
	case len(connecting) > 0:
		set(metav1.ConditionFalse, ReasonConnecting, "the hub is connecting to: "+strings.Join(connecting, ", "))
	case len(syncing) > 0:
		set(metav1.ConditionFalse, ReasonSyncing, "syncing to: "+strings.Join(syncing, ", "))
	case len(missing) > 0:
		set(metav1.ConditionFalse, ReasonNotRegistered, "selected clusters are not registered: "+strings.Join(missing, ", "))
	default:
		set(metav1.ConditionTrue, ReasonAllSynced, fmt.Sprintf("%d clusters in sync", selected))
	}
	bad := append(append(append([]string{}, unreachable...), conflicts...), failed...)
	switch {
	case len(bad) > 0:
		setCondition(svc, now, v1alpha1.ConditionDegraded, metav1.ConditionTrue, meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionPropagated).Reason,
			"not serving as desired in: "+strings.Join(append(bad, failedOver...), ", "))
	case len(failedOver) > 0:
		setCondition(svc, now, v1alpha1.ConditionDegraded, metav1.ConditionTrue, ReasonFailingOver,
			"failed over: "+strings.Join(failedOver, ", ")+" (their share runs in the other clusters)")
	default:
		setCondition(svc, now, v1alpha1.ConditionDegraded, metav1.ConditionFalse, ReasonAsExpected, "every selected cluster is in sync")
	}
}

// failoverCondition sets FailingOver from the placement decision.
func failoverCondition(svc *v1alpha1.FleetInferenceService, now time.Time) {
	p := svc.Status.Placement
	var moved []v1alpha1.ClusterDecision
	for _, d := range p.Clusters {
		if d.FailedOver() {
			moved = append(moved, d)
		}
	}
	if len(moved) == 0 {
		setCondition(svc, now, v1alpha1.ConditionFailingOver, metav1.ConditionFalse, ReasonAllServing, "every selected cluster runs its share")
		return
	}
	reason := ReasonFailingOver
	if len(moved) == 1 && moved[0].Reason == v1alpha1.PlacementCordoned {
		reason = ReasonCordoned
	}
	var parts []string
	for _, d := range sortedDecisions(moved) {
		parts = append(parts, fmt.Sprintf("%s (%s)", d.Name, d.Message))
	}
	msg := "share moved away from " + strings.Join(parts, ", ") + "; now " + sharesText(p, "")
	if p.Unplaced > 0 {
		msg += fmt.Sprintf("; %d replicas fit no healthy cluster", p.Unplaced)
	}
	setCondition(svc, now, v1alpha1.ConditionFailingOver, metav1.ConditionTrue, reason, msg)
}

// sharesText lists the placed clusters' shares by name ("a=1, b=2"), but except.
func sharesText(p *v1alpha1.PlacementStatus, except string) string {
	var parts []string
	for _, d := range sortedDecisions(p.Clusters) {
		if d.Name != except && d.Reason != v1alpha1.PlacementNotRegistered {
			parts = append(parts, fmt.Sprintf("%s=%d", d.Name, d.Replicas))
		}
	}
	return strings.Join(parts, ", ")
}

func sortedDecisions(in []v1alpha1.ClusterDecision) []v1alpha1.ClusterDecision {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b v1alpha1.ClusterDecision) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// summarizeReady derives Ready, in one place for every reconciler: a missing Propagated
// counts as Unknown; RoutesProgrammed blocks Ready only when False (a route that no
// Gateway controller has reported on yet does not).
func summarizeReady(svc *v1alpha1.FleetInferenceService, now time.Time) {
	prop := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionPropagated)
	routes := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionRoutesProgrammed)
	switch {
	case prop == nil || prop.Status == metav1.ConditionUnknown:
		setCondition(svc, now, v1alpha1.ConditionReady, metav1.ConditionUnknown, ReasonNotPropagated, "propagation not yet observed")
	case prop.Status == metav1.ConditionFalse:
		setCondition(svc, now, v1alpha1.ConditionReady, metav1.ConditionFalse, prop.Reason, prop.Message)
	case svc.Status.ReadyReplicas < svc.Status.Replicas:
		setCondition(svc, now, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonReplicasPending,
			fmt.Sprintf("%d of %d replicas ready", svc.Status.ReadyReplicas, svc.Status.Replicas))
	case routes != nil && routes.Status == metav1.ConditionFalse:
		setCondition(svc, now, v1alpha1.ConditionReady, metav1.ConditionFalse, routes.Reason, routes.Message)
	default:
		setCondition(svc, now, v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonReplicasReady,
			fmt.Sprintf("%d of %d replicas ready in %s clusters", svc.Status.ReadyReplicas, svc.Status.Replicas, svc.Status.ClustersReady))
	}
}

// writeStatus writes the status only when it changed, so a no-op reconcile writes nothing.
// The service-level reconcilers update whole statuses with optimistic locking: a stale
// copy fails and is retried, so none loses another's fields. Only placement changes
// status.clusters, with the outcomes member sync reports (Reports).
func writeStatus(ctx context.Context, c client.Client, svc *v1alpha1.FleetInferenceService, before *v1alpha1.FleetInferenceServiceStatus) error {
	svc.Status.ObservedGeneration = svc.Generation
	if equality.Semantic.DeepEqual(before, &svc.Status) {
		return nil
	}
	if l := log.FromContext(ctx).V(2); l.Enabled() {
		l.Info("writing status", "service", client.ObjectKeyFromObject(svc), "diff", cmp.Diff(before, &svc.Status))
	}
	if err := c.Status().Update(ctx, svc); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}
