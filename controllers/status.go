package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

// buildStatus records each cluster's outcome and rolls it up into conditions.
func (r *MemberSync) buildStatus(svc, desired *v1alpha1.FleetInferenceService, results []clusterResult, missing []string, staleErrs []error, stale []string) {
	prev := map[string]v1alpha1.ClusterStatus{}
	for _, c := range svc.Status.Clusters {
		prev[c.Name] = c
	}
	var clusters []v1alpha1.ClusterStatus
	var desiredTotal, readyTotal int32
	readyClusters := 0
	var unreachable, conflicts, failed, failedOver, connecting []string
	for _, res := range results {
		st := res.status
		if st.LastSyncTime == nil {
			st.LastSyncTime = prev[st.Name].LastSyncTime
		}
		if st.LastSyncTime == nil && res.err == nil {
			// In sync, but the write that recorded the apply was lost (a status conflict).
			now := metav1.NewTime(r.Now().UTC().Truncate(time.Second))
			st.LastSyncTime = &now
		}
		clusters = append(clusters, st)
		desiredTotal += st.DesiredReplicas
		readyTotal += min(st.ReadyReplicas, st.DesiredReplicas)
		switch {
		case res.err == nil && st.ReadyReplicas >= st.DesiredReplicas:
			readyClusters++
		case st.FailedOver:
			// Its share runs elsewhere: Degraded and FailingOver say so, not Propagated.
			failedOver = append(failedOver, st.Name)
		case res.pending:
			connecting = append(connecting, st.Name)
		case res.reason == ReasonUnreachable:
			unreachable = append(unreachable, st.Name)
		case res.reason == ReasonConflict:
			conflicts = append(conflicts, st.Name)
		case res.err != nil:
			failed = append(failed, st.Name)
		}
	}
	for _, name := range missing {
		clusters = append(clusters, v1alpha1.ClusterStatus{Name: name, Message: "cluster is not registered with the hub"})
	}
	for i, name := range stale {
		if staleErrs[i] != nil {
			st := prev[name]
			st.Name, st.DesiredReplicas = name, 0
			st.Message = fmt.Sprintf("no longer selected; cleanup pending: %v", staleErrs[i])
			clusters = append(clusters, st)
		}
	}
	sort.Slice(clusters, func(i, j int) bool { return clusters[i].Name < clusters[j].Name })
	svc.Status.Clusters = clusters
	svc.Status.Replicas = desiredTotal
	svc.Status.ReadyReplicas = readyTotal
	svc.Status.ReplicasReady = fmt.Sprintf("%d/%d", readyTotal, desiredTotal)
	svc.Status.ClustersReady = fmt.Sprintf("%d/%d", readyClusters, len(results))

	switch {
	case len(results) == 0 && len(missing) > 0:
		r.setCondition(svc, v1alpha1.ConditionPropagated, metav1.ConditionFalse, ReasonNotRegistered, "selected clusters are not registered: "+strings.Join(missing, ", "))
	case len(results) == 0:
		r.setCondition(svc, v1alpha1.ConditionPropagated, metav1.ConditionFalse, ReasonNoClusters, "placement selects no registered cluster")
	case len(unreachable) > 0:
		r.setCondition(svc, v1alpha1.ConditionPropagated, metav1.ConditionFalse, ReasonUnreachable, "unreachable: "+strings.Join(unreachable, ", "))
	case len(conflicts) > 0:
		r.setCondition(svc, v1alpha1.ConditionPropagated, metav1.ConditionFalse, ReasonConflict, "objects owned by someone else in: "+strings.Join(conflicts, ", ")+" (see status.clusters)")
	case len(failed) > 0:
		r.setCondition(svc, v1alpha1.ConditionPropagated, metav1.ConditionFalse, ReasonSyncFailed, "sync failed in: "+strings.Join(failed, ", ")+" (see status.clusters)")
	case len(connecting) > 0:
		r.setCondition(svc, v1alpha1.ConditionPropagated, metav1.ConditionFalse, ReasonConnecting, "the hub is connecting to: "+strings.Join(connecting, ", "))
	case len(missing) > 0:
		r.setCondition(svc, v1alpha1.ConditionPropagated, metav1.ConditionFalse, ReasonNotRegistered, "selected clusters are not registered: "+strings.Join(missing, ", "))
	default:
		r.setCondition(svc, v1alpha1.ConditionPropagated, metav1.ConditionTrue, ReasonAllSynced, fmt.Sprintf("%d clusters in sync", len(results)))
	}
	bad := append(append(append([]string{}, unreachable...), conflicts...), failed...)
	switch {
	case len(bad) > 0:
		r.setCondition(svc, v1alpha1.ConditionDegraded, metav1.ConditionTrue, meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionPropagated).Reason,
			"not serving as desired in: "+strings.Join(append(bad, failedOver...), ", "))
	case len(failedOver) > 0:
		r.setCondition(svc, v1alpha1.ConditionDegraded, metav1.ConditionTrue, ReasonFailingOver,
			"failed over: "+strings.Join(failedOver, ", ")+" (their share runs in the other clusters)")
	default:
		r.setCondition(svc, v1alpha1.ConditionDegraded, metav1.ConditionFalse, ReasonAsExpected, "every selected cluster is in sync")
	}
}

// summarize derives Ready from the other conditions and the replica counts.
func (r *MemberSync) summarize(svc *v1alpha1.FleetInferenceService) { summarizeReady(svc, r.Now()) }

func (r *MemberSync) setCondition(svc *v1alpha1.FleetInferenceService, typ string, status metav1.ConditionStatus, reason, msg string) {
	setCondition(svc, r.Now(), typ, status, reason, msg)
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

func setCondition(svc *v1alpha1.FleetInferenceService, now time.Time, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&svc.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: svc.Generation,
		LastTransitionTime: metav1.NewTime(now.UTC().Truncate(time.Second)),
	})
}

func (r *MemberSync) writeStatus(ctx context.Context, svc *v1alpha1.FleetInferenceService, before *v1alpha1.FleetInferenceServiceStatus) error {
	return writeStatus(ctx, r.Hub, svc, before)
}

// writeStatus writes the status only when it changed, so a no-op reconcile writes nothing.
// Reconcilers sharing the status update whole statuses with optimistic locking: a stale
// copy fails and is retried, so neither loses the other's fields.
func writeStatus(ctx context.Context, c client.Client, svc *v1alpha1.FleetInferenceService, before *v1alpha1.FleetInferenceServiceStatus) error {
	svc.Status.ObservedGeneration = svc.Generation
	if equality.Semantic.DeepEqual(before, &svc.Status) {
		return nil
	}
	if err := c.Status().Update(ctx, svc); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}
