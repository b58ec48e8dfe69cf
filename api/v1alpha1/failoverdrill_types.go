package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DrillPhase is where a failover drill is.
// +kubebuilder:validation:Enum=Pending;Draining;Recovered;Restoring;Succeeded;Failed
type DrillPhase string

const (
	DrillPending   DrillPhase = "Pending"
	DrillDraining  DrillPhase = "Draining"
	DrillRecovered DrillPhase = "Recovered"
	DrillRestoring DrillPhase = "Restoring"
	DrillSucceeded DrillPhase = "Succeeded"
	DrillFailed    DrillPhase = "Failed"
)

// Running is whether a drill in this phase may have its cordon on: Draining, Recovered or
// Restoring.
func (p DrillPhase) Running() bool {
	return p == DrillDraining || p == DrillRecovered || p == DrillRestoring
}

// Finished is whether the drill is over: Succeeded or Failed.
func (p DrillPhase) Finished() bool {
	return p == DrillSucceeded || p == DrillFailed
}

// Condition types of a FailoverDrill, for `kubectl wait --for=condition=...`.
const (
	// DrillConditionRecovered is True once the other clusters carried every drilled
	// service ready without the drilled cluster (reason Recovered), False while they do
	// not yet (reason Draining) or when the drill failed before they did (the failure's
	// reason).
	DrillConditionRecovered = "Recovered"
	// DrillConditionSucceeded is Unknown while the drill runs (the reason is its phase),
	// True when the drilled cluster carried its share ready again (reason Succeeded), and
	// False when the drill failed (reason CannotStart, RecoveryTimedOut, ServicesDeleted or
	// FailbackTimedOut, with the drill's message).
	DrillConditionSucceeded = "Succeeded"
)

// Reasons of a failed drill's conditions.
const (
	// DrillReasonCannotStart: nothing to drill, or another drill holds the cluster.
	DrillReasonCannotStart = "CannotStart"
	// DrillReasonRecoveryTimedOut: the other clusters did not carry the replicas in time.
	DrillReasonRecoveryTimedOut = "RecoveryTimedOut"
	// DrillReasonServicesDeleted: every drilled service was deleted during the drill.
	DrillReasonServicesDeleted = "ServicesDeleted"
	// DrillReasonFailbackTimedOut: the drilled cluster did not carry its share in time.
	DrillReasonFailbackTimedOut = "FailbackTimedOut"
)

// FailoverDrill rehearses the loss of one cluster (a region): it takes the cluster out of
// placement on purpose, waits until the other clusters carry the full replica count ready,
// then restores the cluster and waits for failback, and reports both times.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName={drill,drills},categories=inferfleet
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.cluster`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Recover",type=string,JSONPath=`.status.timeToRecover`
// +kubebuilder:printcolumn:name="Failback",type=string,JSONPath=`.status.timeToFailback`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type FailoverDrill struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   FailoverDrillSpec   `json:"spec"`
	Status FailoverDrillStatus `json:"status,omitempty"`
}

// FailoverDrillSpec says which cluster to take out, for which services, and for how long
// at most.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a drill's spec cannot change once created: create another drill"
type FailoverDrillSpec struct {
	// Cluster is the member cluster (region) to take out of placement.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Cluster string `json:"cluster"`

	// Service limits the drill to one FleetInferenceService in the drill's namespace;
	// empty means every service in that namespace placed on the cluster.
	// +kubebuilder:validation:MaxLength=58
	// +optional
	Service string `json:"service,omitempty"`

	// Timeout bounds each half of the drill (recovery, then failback).
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="timeout must be between 1s and 24h"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// FailoverDrillStatus is the drill's report.
type FailoverDrillStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase is where the drill is.
	// +optional
	Phase DrillPhase `json:"phase,omitempty"`
	// Conditions: Recovered and Succeeded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// StartTime is when the cluster was taken out.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// RecoveredTime is when the other clusters carried every replica ready.
	// +optional
	RecoveredTime *metav1.Time `json:"recoveredTime,omitempty"`
	// RestoreTime is when the cluster was put back.
	// +optional
	RestoreTime *metav1.Time `json:"restoreTime,omitempty"`
	// CompletionTime is when the drill finished: when the cluster carried its share ready
	// again, or when it failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// TimeToRecover is from taking the cluster out until the other clusters carried every
	// replica ready, to a tenth of a second (e.g. "12.3s").
	// +optional
	TimeToRecover *metav1.Duration `json:"timeToRecover,omitempty"`
	// TimeToFailback is from putting the cluster back until it carried its share ready
	// again, to a tenth of a second.
	// +optional
	TimeToFailback *metav1.Duration `json:"timeToFailback,omitempty"`
	// Services are the services the drill moved, with what moved.
	// +listType=map
	// +listMapKey=name
	// +optional
	Services []DrillServiceReport `json:"services,omitempty"`
	// Message says why a drill failed, or what limited its recovery.
	// +optional
	Message string `json:"message,omitempty"`
}

// DrillServiceReport is what a drill moved for one service.
type DrillServiceReport struct {
	// Name of the FleetInferenceService.
	Name string `json:"name"`
	// Before is each cluster's desired replicas before the drill.
	// +listType=map
	// +listMapKey=cluster
	// +optional
	Before []DrillClusterShare `json:"before,omitempty"`
	// During is each cluster's desired replicas once the other clusters carried the
	// service without the drilled cluster (which then has 0).
	// +listType=map
	// +listMapKey=cluster
	// +optional
	During []DrillClusterShare `json:"during,omitempty"`
}

// DrillClusterShare is the replicas placed on one cluster.
type DrillClusterShare struct {
	// Cluster is the member cluster's name.
	Cluster string `json:"cluster"`
	// Replicas is the cluster's desired replicas.
	Replicas int32 `json:"replicas"`
}

// FailoverDrillList is a list of FailoverDrills.
// +kubebuilder:object:root=true
type FailoverDrillList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FailoverDrill `json:"items"`
}

func init() {
	SchemeBuilder.Register(&FailoverDrill{}, &FailoverDrillList{})
}
