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

// FailoverDrill rehearses the loss of one cluster (a region): it takes the cluster out of
// placement on purpose, waits until the other clusters carry the full replica count ready,
// then restores the cluster and waits for failback, and reports both times.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=drill,categories=inferfleet
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
	// Phase is where the drill is.
	// +optional
	Phase DrillPhase `json:"phase,omitempty"`
	// StartTime is when the cluster was taken out.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// RecoveredTime is when the other clusters carried every replica ready.
	// +optional
	RecoveredTime *metav1.Time `json:"recoveredTime,omitempty"`
	// RestoreTime is when the cluster was put back.
	// +optional
	RestoreTime *metav1.Time `json:"restoreTime,omitempty"`
	// CompletionTime is when the cluster carried its share ready again.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// TimeToRecover is RecoveredTime - StartTime.
	// +optional
	TimeToRecover string `json:"timeToRecover,omitempty"`
	// TimeToFailback is CompletionTime - RestoreTime.
	// +optional
	TimeToFailback string `json:"timeToFailback,omitempty"`
	// Services are the services the drill moved, with what moved.
	// +optional
	Services []DrillServiceReport `json:"services,omitempty"`
	// Message says why a drill failed.
	// +optional
	Message string `json:"message,omitempty"`
}

// DrillServiceReport is what a drill moved for one service.
type DrillServiceReport struct {
	// Name of the FleetInferenceService.
	Name string `json:"name"`
	// Before is each cluster's share before the drill, as "cluster=replicas".
	// +optional
	Before []string `json:"before,omitempty"`
	// During is each cluster's share with the drilled cluster out.
	// +optional
	During []string `json:"during,omitempty"`
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
