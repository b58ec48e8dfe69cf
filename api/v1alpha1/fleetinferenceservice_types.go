package v1alpha1

import (
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Provider names how member InferencePools are exported and imported into the config cluster.
// +kubebuilder:validation:Enum=GKE;InferencePoolImport
type Provider string

const (
	// ProviderGKE exports pools with networking.gke.io/export and routes to the
	// GCPInferencePoolImport that GKE creates in the config cluster.
	ProviderGKE Provider = "GKE"
	// ProviderInferencePoolImport is the open-source path: the hub itself writes
	// InferencePoolImports (inference.networking.x-k8s.io/v1alpha1).
	ProviderInferencePoolImport Provider = "InferencePoolImport"
)

// GatewayMode says how the Gateway reaches the model servers.
// +kubebuilder:validation:Enum=MultiCluster;Regional
type GatewayMode string

const (
	// GatewayMultiCluster: a multi-cluster Gateway (a "-mc" class) in the config cluster routes
	// to the pool imported from every member (GCPInferencePoolImport or InferencePoolImport),
	// with one address per member region.
	GatewayMultiCluster GatewayMode = "MultiCluster"
	// GatewayRegional: a regional Gateway (gke-l7-regional-external-managed, gke-l7-rilb) in
	// the one member that holds the pool routes to the InferencePool itself.
	GatewayRegional GatewayMode = "Regional"
)

// BalancingMode selects the load balancer's signal across clusters.
// +kubebuilder:validation:Enum=CustomMetrics;InFlight
type BalancingMode string

const (
	// BalancingCustomMetrics balances on the KV-cache use exported by AutoscalingMetric.
	BalancingCustomMetrics BalancingMode = "CustomMetrics"
	// BalancingInFlight balances on in-flight requests per endpoint.
	BalancingInFlight BalancingMode = "InFlight"
)

// TrafficDuration tells the load balancer whether requests are long-lived.
// +kubebuilder:validation:Enum=Long;Short
type TrafficDuration string

const (
	TrafficDurationLong  TrafficDuration = "Long"
	TrafficDurationShort TrafficDuration = "Short"
)

// FailoverPolicy says what happens to a cluster's share when it becomes unhealthy.
// +kubebuilder:validation:Enum=Redistribute;None
type FailoverPolicy string

const (
	// FailoverRedistribute moves an unhealthy cluster's replicas to the healthy ones.
	FailoverRedistribute FailoverPolicy = "Redistribute"
	// FailoverNone keeps every cluster's share where it is.
	FailoverNone FailoverPolicy = "None"
)

// SpilloverPolicy says what happens to replicas a cluster cannot place.
// +kubebuilder:validation:Enum=Spill;None
type SpilloverPolicy string

const (
	// SpilloverSpill runs the replicas a cluster cannot schedule in the other clusters
	// until it can place them again.
	SpilloverSpill SpilloverPolicy = "Spill"
	// SpilloverNone leaves them waiting in their cluster.
	SpilloverNone SpilloverPolicy = "None"
)

// ScaleUpState is what the cluster autoscaler last said of a cluster's unschedulable
// model-server pods.
// +kubebuilder:validation:Enum=Triggered;NotTriggered;Failed
type ScaleUpState string

const (
	// ScaleUpTriggered: a node pool is scaling up for them (TriggeredScaleUp).
	ScaleUpTriggered ScaleUpState = "Triggered"
	// ScaleUpNotTriggered: no node pool can grow to fit them (NotTriggerScaleUp).
	ScaleUpNotTriggered ScaleUpState = "NotTriggered"
	// ScaleUpFailed: a scale-up for them failed, e.g. a stockout (FailedScaleUp).
	ScaleUpFailed ScaleUpState = "Failed"
)

// DeletionPolicy says what happens to member objects when the service is deleted.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

const (
	// DeletionDelete removes every owned object from every member before the service goes.
	DeletionDelete DeletionPolicy = "Delete"
	// DeletionOrphan leaves member objects in place.
	DeletionOrphan DeletionPolicy = "Orphan"
)

// EndpointPickerFailureMode is the InferencePool's behaviour when the endpoint picker is down.
// +kubebuilder:validation:Enum=FailOpen;FailClose
type EndpointPickerFailureMode string

const (
	// FailOpen sends requests to any endpoint when the picker is down.
	FailOpen EndpointPickerFailureMode = "FailOpen"
	// FailClose rejects requests when the picker is down.
	FailClose EndpointPickerFailureMode = "FailClose"
)

// Condition types of a FleetInferenceService.
const (
	// ConditionReady summarises the others: the model serves in every selected cluster.
	ConditionReady = "Ready"
	// ConditionPropagated is true when every selected member holds the desired objects.
	ConditionPropagated = "Propagated"
	// ConditionRoutesProgrammed is true when the config cluster's Gateway and routes are programmed.
	ConditionRoutesProgrammed = "RoutesProgrammed"
	// ConditionDegraded is true when some cluster cannot run its share.
	ConditionDegraded = "Degraded"
	// ConditionFailingOver is true while an unhealthy cluster's share runs elsewhere.
	ConditionFailingOver = "FailingOver"
)

// FleetInferenceService serves one model across the member clusters of a fleet: the model
// server, its InferencePool and endpoint picker, objectives and metrics in every selected
// member, and the cross-region Gateway and policies in the config cluster.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=fis,categories=inferfleet
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Replicas",type=string,JSONPath=`.status.replicasReady`,description="ready/desired replicas across the fleet"
// +kubebuilder:printcolumn:name="Clusters",type=string,JSONPath=`.status.clustersReady`,description="ready/selected member clusters"
// +kubebuilder:printcolumn:name="Gateway",type=string,JSONPath=`.spec.gateway.name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 58 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS-1035 label of at most 58 characters (it names Deployments, Services and the app label in every member)"
type FleetInferenceService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   FleetInferenceServiceSpec   `json:"spec"`
	Status FleetInferenceServiceStatus `json:"status,omitempty"`
}

// Total is the fleet total placement splits: the autoscaler's with autoscaling (once it
// has decided), spec.replicas otherwise.
func (s *FleetInferenceService) Total() int32 {
	if s.Spec.Autoscaling != nil && s.Status.Autoscaling != nil {
		return s.Status.Autoscaling.DesiredReplicas
	}
	return s.Spec.Replicas
}

// ScalesToZero: the autoscaler may take the fleet to zero servers (minReplicas 0).
func (s *FleetInferenceServiceSpec) ScalesToZero() bool {
	return s.Autoscaling != nil && s.Autoscaling.MinReplicas != nil && *s.Autoscaling.MinReplicas == 0
}

// DefaultIdleWindowSeconds is autoscaling.idleWindowSeconds when unset.
const DefaultIdleWindowSeconds = 300

// FleetInferenceServiceSpec is what the user asks the fleet to serve.
// +kubebuilder:validation:XValidation:rule="!has(self.gateway.mode) || self.gateway.mode != 'Regional' || !has(self.gateway.className) || !self.gateway.className.endsWith('-mc')",message="gateway.mode Regional routes to the InferencePool in its own cluster; gateway.className names a multi-cluster class (-mc), which routes to an imported pool: use a regional class (gke-l7-regional-external-managed, gke-l7-rilb) or gateway.mode MultiCluster"
// +kubebuilder:validation:XValidation:rule="!has(self.gateway.mode) || self.gateway.mode != 'MultiCluster' || !has(self.gateway.className) || !(self.gateway.className in ['gke-l7-regional-external-managed', 'gke-l7-rilb'])",message="gateway.mode MultiCluster routes to an imported pool with an address per region; gateway.className is a regional class, which can program neither: use a multi-cluster class (-mc) or gateway.mode Regional"
// +kubebuilder:validation:XValidation:rule="!((has(self.gateway.mode) && self.gateway.mode == 'Regional') || (!has(self.gateway.mode) && has(self.gateway.className) && self.gateway.className in ['gke-l7-regional-external-managed', 'gke-l7-rilb'])) || !has(self.placement.clusters) || self.placement.clusters.size() == 1",message="a regional Gateway (gateway.mode Regional, or a regional gateway.className) serves the pool of one cluster: placement.clusters must list exactly one cluster (use gateway.mode MultiCluster with a -mc class to serve several clusters or regions)"
// +kubebuilder:validation:XValidation:rule="!has(self.endpointPicker.monitoring) || !has(self.endpointPicker.monitoring.gke) || !self.endpointPicker.monitoring.gke || !has(self.gateway.provider) || self.gateway.provider == 'GKE'",message="endpointPicker.monitoring.gke needs gateway.provider GKE (Managed Prometheus)"
// +kubebuilder:validation:XValidation:rule="!has(self.computeClasses) || self.computeClasses.all(c, (has(self.model.computeClass) && self.model.computeClass == c.name) || (has(self.placement.clusters) && self.placement.clusters.exists(p, has(p.overrides) && has(p.overrides.computeClass) && p.overrides.computeClass == c.name)))",message="computeClasses: every class must be named by model.computeClass or a placement.clusters[].overrides.computeClass (an unused class would be written nowhere)"
// +kubebuilder:validation:XValidation:rule="!has(self.gateway.bodyBasedRouting) || !self.gateway.bodyBasedRouting || (has(self.objectives) ? self.objectives.size() : 0) + (has(self.model.loraAdapters) ? self.model.loraAdapters.size() : 0) <= 127",message="gateway.bodyBasedRouting routes each model name with one HTTPRoute match and a route holds at most 128: objectives plus loraAdapters must not exceed 127"
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || (self.replicas >= (has(self.autoscaling.minReplicas) ? self.autoscaling.minReplicas : 1) && self.replicas <= self.autoscaling.maxReplicas)",message="replicas must be within autoscaling.minReplicas and autoscaling.maxReplicas: with autoscaling it is the total the autoscaler starts from"
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(oldSelf.autoscaling) || self.replicas == oldSelf.replicas || self.autoscaling.maxReplicas != oldSelf.autoscaling.maxReplicas || (has(self.autoscaling.minReplicas) ? self.autoscaling.minReplicas : 1) != (has(oldSelf.autoscaling.minReplicas) ? oldSelf.autoscaling.minReplicas : 1)",message="replicas is the hub autoscaler's while autoscaling is set (kubectl scale, an HPA or KEDA would fight it): change autoscaling.minReplicas or maxReplicas, or remove autoscaling to set replicas by other means"
type FleetInferenceServiceSpec struct {
	// Model is the model, its server and the accelerator each replica runs on.
	Model ModelSpec `json:"model"`

	// ComputeClasses are GKE ComputeClasses the service brings: each is written to every
	// member whose model server uses it (model.computeClass or a cluster's override), owned
	// by this service, and removed from members that no longer use it. A class of the same
	// name that the hub does not own is never overwritten (the cluster reports Conflict).
	// Omit a class here to use one the cluster already has.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	// +optional
	ComputeClasses []ComputeClass `json:"computeClasses,omitempty"`

	// Objectives become InferenceObjectives in every member, one per entry, each with its
	// priority for the endpoint picker.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Objectives []Objective `json:"objectives,omitempty"`

	// Replicas is the total number of model-server replicas across the fleet. It is also
	// the scale subresource's, so kubectl scale, an HPA or KEDA can set it. With
	// autoscaling, it is where the autoscaler starts, within [minReplicas, maxReplicas],
	// and the hub's autoscaler owns the total (status.autoscaling.desiredReplicas).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	Replicas int32 `json:"replicas"`

	// Autoscaling lets the hub set the fleet total from the model servers' own load.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// Placement selects member clusters and spreads replicas over them.
	Placement PlacementSpec `json:"placement"`

	// Gateway is the cross-region Gateway in the config cluster that serves this model.
	// +kubebuilder:default={}
	// +optional
	Gateway GatewaySpec `json:"gateway,omitempty"`

	// Balancing is the load balancer's signal across clusters.
	// +kubebuilder:default={}
	// +optional
	Balancing BalancingSpec `json:"balancing,omitempty"`

	// EndpointPicker configures the endpoint picker (EPP) deployed beside each InferencePool.
	// +kubebuilder:default={}
	// +optional
	EndpointPicker EndpointPickerSpec `json:"endpointPicker,omitempty"`

	// DeletionPolicy says whether deleting the service deletes its objects in the members
	// (Delete) or leaves them running (Orphan).
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// AutoscalingSpec sets the fleet total from the model servers' own signals, as a
// HorizontalPodAutoscaler would for one Deployment: per metric, the ratio of the servers'
// average to the target; the largest total any metric asks for; the behavior's
// stabilization windows and step limits; then [minReplicas, maxReplicas].
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="autoscaling.minReplicas must not exceed autoscaling.maxReplicas"
// +kubebuilder:validation:XValidation:rule="!has(self.idleWindowSeconds) || (has(self.minReplicas) && self.minReplicas == 0)",message="autoscaling.idleWindowSeconds is the wait before scaling to zero: it needs autoscaling.minReplicas 0"
type AutoscalingSpec struct {
	// MinReplicas is the fewest replicas across the fleet (default 1). 0 lets the fleet
	// scale to zero once it has been idle for idleWindowSeconds: the model servers go, the
	// InferencePool, endpoint picker and routes stay, and the first request an endpoint
	// picker receives brings one server back (clients get 503 until it is Ready). To see
	// that request the hub reads the endpoint pickers' request counters through each
	// member's API server, so with 0 their metrics endpoint is rendered without auth.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	// +kubebuilder:default=1
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// IdleWindowSeconds, with minReplicas 0, is how long no model server may report a
	// running or waiting request, and no endpoint picker receive one, before the fleet
	// scales to zero (default 300, KEDA's cooldownPeriod).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	// +optional
	IdleWindowSeconds *int32 `json:"idleWindowSeconds,omitempty"`

	// MaxReplicas is the most replicas across the fleet.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxReplicas int32 `json:"maxReplicas"`

	// Metrics are the model servers' signals and their targets.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=3
	Metrics []AutoscalingMetric `json:"metrics"`

	// Behavior is the HorizontalPodAutoscaler's: stabilization windows, step limits and
	// tolerance, up and down. Unset fields take the HPA's defaults: up at once by the
	// larger of 4 replicas or 100 % every 15 s; down by up to 100 % every 15 s to the
	// largest recommendation of the last 5 minutes; a tolerance of 10 %.
	// +optional
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
}

// AutoscalingMetricType names a model-server signal.
// +kubebuilder:validation:Enum=KVCacheUtilization;WaitingRequests;RunningRequests
type AutoscalingMetricType string

const (
	// MetricKVCacheUtilization is vLLM's KV-cache use (vllm:kv_cache_usage_perc), 0 to 100 %.
	MetricKVCacheUtilization AutoscalingMetricType = "KVCacheUtilization"
	// MetricWaitingRequests is the requests a server has queued (vllm:num_requests_waiting).
	MetricWaitingRequests AutoscalingMetricType = "WaitingRequests"
	// MetricRunningRequests is the requests a server is running (vllm:num_requests_running).
	MetricRunningRequests AutoscalingMetricType = "RunningRequests"
)

// AutoscalingMetric is one signal and its target per model server.
// +kubebuilder:validation:XValidation:rule="self.type == 'KVCacheUtilization' ? (has(self.averageUtilization) && !has(self.averageValue)) : (has(self.averageValue) && !has(self.averageUtilization))",message="autoscaling.metrics: KVCacheUtilization takes averageUtilization (percent); WaitingRequests and RunningRequests take averageValue (requests per replica)"
type AutoscalingMetric struct {
	// Type is the signal.
	Type AutoscalingMetricType `json:"type"`

	// AverageUtilization is the KV-cache use to keep each server at, in percent.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	AverageUtilization *int32 `json:"averageUtilization,omitempty"`

	// AverageValue is the requests to keep each server at.
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="autoscaling.metrics.averageValue must be greater than 0"
	// +optional
	AverageValue *resource.Quantity `json:"averageValue,omitempty"`
}

// ModelSpec describes the model and how its server runs.
// +kubebuilder:validation:XValidation:rule="!has(self.computeClass) || self.computeClass.size() == 0 || has(self.accelerator)",message="model.computeClass needs model.accelerator (the compute class picks where the accelerator comes from)"
// +kubebuilder:validation:XValidation:rule="!has(self.fallbackAccelerators) || (has(self.computeClass) && self.computeClass.size() > 0)",message="model.fallbackAccelerators needs model.computeClass (the compute class decides which one a node offers)"
type ModelSpec struct {
	// Name is the model clients send as "model", and vLLM's --model.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`

	// Server is the model server container.
	// +kubebuilder:default={}
	// +optional
	Server ServerSpec `json:"server,omitempty"`

	// Accelerator is the GPU or TPU each replica runs on; omit it for a CPU-only server.
	// +optional
	Accelerator *AcceleratorSpec `json:"accelerator,omitempty"`

	// FallbackAccelerators are further accelerators the same pod can run on when the
	// compute class falls back to them (TPU first, then GPU): each gets its own server
	// container that starts only on its own hardware. Needs computeClass.
	// +kubebuilder:validation:MaxItems=4
	// +optional
	FallbackAccelerators []AcceleratorSpec `json:"fallbackAccelerators,omitempty"`

	// ComputeClass names a GKE ComputeClass whose priorities choose (and fall back between)
	// node pools, for example TPU first, then spot L4, then on-demand L4.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`
	// +optional
	ComputeClass string `json:"computeClass,omitempty"`

	// LoraAdapters are loaded into every replica by the lora-adapter-syncer sidecar.
	// +listType=map
	// +listMapKey=id
	// +kubebuilder:validation:MaxItems=64
	// +optional
	LoraAdapters []LoraAdapter `json:"loraAdapters,omitempty"`
}

// ComputeClass is a GKE ComputeClass (cloud.google.com/v1): node choices tried in order,
// so a replica falls back from one kind of capacity to the next (for example reservation,
// then DWS flex-start, then spot; or TPU v6e node pools, then L4 spot, then L4).
type ComputeClass struct {
	// Name of the ComputeClass (cluster-scoped in each member).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Priorities are tried in order: each names node pools, or a machine family or type with
	// its GPU or TPU, spot, reservations or flex-start.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Priorities []ComputeClassPriority `json:"priorities"`

	// NodePoolAutoCreation lets GKE create node pools for the priorities (Standard clusters).
	// +optional
	NodePoolAutoCreation *NodePoolAutoCreation `json:"nodePoolAutoCreation,omitempty"`

	// WhenUnsatisfiable is ScaleUpAnyway (fall back to any node) or DoNotScaleUp.
	// +kubebuilder:validation:Enum=ScaleUpAnyway;DoNotScaleUp
	// +optional
	WhenUnsatisfiable string `json:"whenUnsatisfiable,omitempty"`
}

// ComputeClassPriority is one rule of a ComputeClass, as GKE documents it.
// +kubebuilder:validation:XValidation:rule="!has(self.gpu) || !has(self.tpu)",message="a compute class priority asks for a gpu or a tpu, not both"
// +kubebuilder:validation:XValidation:rule="!has(self.nodepools) || (!has(self.machineFamily) && !has(self.machineType) && !has(self.gpu) && !has(self.tpu))",message="nodepools names existing node pools: it does not combine with machineFamily, machineType, gpu or tpu"
type ComputeClassPriority struct {
	// Nodepools are existing node pools, by name.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=63
	// +optional
	Nodepools []string `json:"nodepools,omitempty"`
	// MachineFamily such as g2, a3 or ct6e.
	// +kubebuilder:validation:MaxLength=32
	// +optional
	MachineFamily string `json:"machineFamily,omitempty"`
	// MachineType such as g2-standard-8.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	MachineType string `json:"machineType,omitempty"`
	// MinCores of the node.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinCores *int32 `json:"minCores,omitempty"`
	// MinMemoryGb of the node.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinMemoryGb *int32 `json:"minMemoryGb,omitempty"`
	// Spot nodes.
	// +optional
	Spot *bool `json:"spot,omitempty"`
	// GPU of the node.
	// +optional
	GPU *ComputeClassGPU `json:"gpu,omitempty"`
	// TPU of the node.
	// +optional
	TPU *ComputeClassTPU `json:"tpu,omitempty"`
	// Reservations to consume.
	// +optional
	Reservations *ComputeClassReservations `json:"reservations,omitempty"`
	// FlexStart provisions the nodes with DWS flex-start.
	// +optional
	FlexStart *ComputeClassFlexStart `json:"flexStart,omitempty"`
}

// ComputeClassGPU is a priority's GPU.
type ComputeClassGPU struct {
	// Type such as nvidia-l4.
	// +kubebuilder:validation:Pattern=`^nvidia-[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Type string `json:"type"`
	// Count per node.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	Count int32 `json:"count"`
	// DriverVersion is default or latest.
	// +kubebuilder:validation:Enum=default;latest
	// +optional
	DriverVersion string `json:"driverVersion,omitempty"`
}

// ComputeClassTPU is a priority's TPU.
type ComputeClassTPU struct {
	// Type such as tpu-v6e-slice.
	// +kubebuilder:validation:Pattern=`^tpu-[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Type string `json:"type"`
	// Count of chips per node.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	Count int32 `json:"count"`
	// Topology such as 2x2.
	// +kubebuilder:validation:Pattern=`^[1-9][0-9]*x[1-9][0-9]*(x[1-9][0-9]*)?$`
	// +kubebuilder:validation:MaxLength=16
	Topology string `json:"topology"`
}

// ComputeClassReservations are the reservations a priority consumes.
// +kubebuilder:validation:XValidation:rule="self.affinity != 'Specific' || (has(self.specific) && self.specific.size() > 0)",message="reservations.specific is required with affinity Specific"
type ComputeClassReservations struct {
	// Affinity is AnyBestEffort, Specific or None.
	// +kubebuilder:validation:Enum=AnyBestEffort;Specific;None
	Affinity string `json:"affinity"`
	// Specific reservations, by name (and project, for shared ones).
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Specific []ComputeClassReservation `json:"specific,omitempty"`
}

// ComputeClassReservation names one reservation.
type ComputeClassReservation struct {
	// Name of the reservation.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Project that owns a shared reservation.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Project string `json:"project,omitempty"`
}

// ComputeClassFlexStart is DWS flex-start provisioning.
type ComputeClassFlexStart struct {
	// Enabled turns flex-start on.
	Enabled bool `json:"enabled"`
}

// NodePoolAutoCreation lets GKE create node pools for a ComputeClass.
type NodePoolAutoCreation struct {
	// Enabled turns node-pool auto-creation on.
	Enabled bool `json:"enabled"`
}

// ServerSpec is the model server (vLLM) container.
type ServerSpec struct {
	// Image is the vLLM image, for every accelerator that names no image of its own.
	// +kubebuilder:default="vllm/vllm-openai:latest"
	// +kubebuilder:validation:MinLength=1
	// +optional
	Image string `json:"image,omitempty"`

	// Port is the port vLLM listens on (--port) and the InferencePool's target port.
	// +kubebuilder:default=8000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// Args are extra vLLM arguments; --model and --port are derived and must not appear.
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:items:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.all(a, !a.startsWith('--model=') && a != '--model' && !a.startsWith('--port=') && a != '--port')",message="model.server.args must not set --model or --port: they come from model.name and model.server.port"
	// +optional
	Args []string `json:"args,omitempty"`

	// Command replaces the derived command. By default a GPU container runs an "sh -c"
	// wrapper (it adds GKE's NVIDIA driver under /usr/local/nvidia to PATH and
	// LD_LIBRARY_PATH, where vLLM images after v0.8.5 no longer find it, and runs
	// python3 -m vllm.entrypoints.openai.api_server with the arguments), and a TPU or CPU
	// container runs python3 -m vllm.entrypoints.openai.api_server. With a command set, the
	// container runs it with --model, --port and args as its arguments. In a pod with
	// fallbackAccelerators, each container's hardware check execs it in place of vLLM.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=4096
	// +optional
	Command []string `json:"command,omitempty"`

	// Probes replace the derived startup, readiness and liveness probes (GET /health every
	// second) one by one.
	// +optional
	Probes *ProbesSpec `json:"probes,omitempty"`

	// StartupTimeout is how long a replica may take to download and load the model before
	// it is restarted: the startup probe's budget (default 10m; larger models, or TPUs that
	// compile the model at start, may need more, e.g. 15m for a 14B model on TPU v5e).
	// Ignored when probes.startup is set.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('6h')",message="model.server.startupTimeout must be between 10s and 6h"
	// +optional
	StartupTimeout *metav1.Duration `json:"startupTimeout,omitempty"`

	// Env are extra environment variables of the vLLM container.
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// Resources are cpu and memory; accelerator limits are derived from model.accelerator.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// HuggingFaceTokenSecretRef names a Secret in this namespace holding a Hugging Face
	// token; the hub copies it to the members that run the model.
	// +optional
	HuggingFaceTokenSecretRef *SecretKeyRef `json:"huggingFaceTokenSecretRef,omitempty"`
}

// ProbesSpec replaces the model server's probes; an unset probe keeps the derived one.
type ProbesSpec struct {
	// Startup probe.
	// +optional
	Startup *corev1.Probe `json:"startup,omitempty"`
	// Readiness probe.
	// +optional
	Readiness *corev1.Probe `json:"readiness,omitempty"`
	// Liveness probe.
	// +optional
	Liveness *corev1.Probe `json:"liveness,omitempty"`
}

// SecretKeyRef is a key of a Secret in the service's namespace.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// Key in the Secret's data.
	// +kubebuilder:default=token
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// AcceleratorSpec is the accelerator of one replica.
// +kubebuilder:validation:XValidation:rule="!self.type.startsWith('tpu-') || (has(self.topology) && self.topology.size() > 0)",message="accelerator.topology is required for TPU types (for example 2x2)"
// +kubebuilder:validation:XValidation:rule="self.type.startsWith('tpu-') || !has(self.topology) || self.topology.size() == 0",message="accelerator.topology applies to TPU types only"
type AcceleratorSpec struct {
	// Type is the GKE accelerator: a GPU (nvidia-h100-80gb, nvidia-l4, ...) or a TPU
	// (tpu-v5-lite-podslice, tpu-v6e-slice, ...).
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^(nvidia|tpu)-[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Type string `json:"type"`

	// Count is the number of GPUs, or TPU chips, per replica.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	Count int32 `json:"count,omitempty"`

	// Topology is the TPU slice topology, for example 2x2 or 2x2x1; TPU types only.
	// +kubebuilder:validation:Pattern=`^([1-9][0-9]*x[1-9][0-9]*(x[1-9][0-9]*)?)?$`
	// +kubebuilder:validation:MaxLength=16
	// +optional
	Topology string `json:"topology,omitempty"`

	// Image is the model server image for this accelerator, replacing model.server.image:
	// TPU and GPU builds of vLLM are separate images (vllm/vllm-tpu, vllm/vllm-openai). In a
	// cluster whose overrides set image, that image replaces this one unless this
	// accelerator is the overrides' own.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`
}

// RegionalGatewayClasses are the GKE Gateway classes GKE Inference Gateway supports in a
// single cluster (see GKE's "Serve an LLM with GKE Inference Gateway").
var RegionalGatewayClasses = []string{"gke-l7-regional-external-managed", "gke-l7-rilb"}

// IsRegionalClass reports whether class is one of RegionalGatewayClasses.
func IsRegionalClass(class string) bool {
	for _, c := range RegionalGatewayClasses {
		if c == class {
			return true
		}
	}
	return false
}

// EffectiveMode is the gateway's mode: spec.gateway.mode, else Regional for a regional
// class and MultiCluster for any other.
func (g *GatewaySpec) EffectiveMode() GatewayMode {
	switch {
	case g.Mode != "":
		return g.Mode
	case IsRegionalClass(g.ClassName):
		return GatewayRegional
	default:
		return GatewayMultiCluster
	}
}

// IsTPU reports whether the accelerator is a TPU.
func (a *AcceleratorSpec) IsTPU() bool {
	return a != nil && len(a.Type) > 4 && a.Type[:4] == "tpu-"
}

// LoraAdapter is a LoRA adapter served beside the base model.
type LoraAdapter struct {
	// ID is the adapter's model name as clients send it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ID string `json:"id"`

	// Source is the adapter's Hugging Face repository (or a path vLLM can load).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Source string `json:"source"`
}

// Objective is one InferenceObjective rendered into every member.
type Objective struct {
	// Name of the InferenceObjective.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// Priority for the endpoint picker: higher is served first under load.
	// +optional
	Priority *int32 `json:"priority,omitempty"`
}

// PlacementSpec selects member clusters, either by name or by label selector, and spreads
// spec.replicas over them.
// +kubebuilder:validation:XValidation:rule="has(self.clusters) != has(self.clusterSelector)",message="placement needs exactly one of placement.clusters and placement.clusterSelector (an empty clusterSelector selects every member)"
type PlacementSpec struct {
	// Clusters lists the member clusters by name, with weights and limits.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=128
	// +optional
	Clusters []ClusterPlacement `json:"clusters,omitempty"`

	// ClusterSelector selects member clusters by their labels (region, user labels).
	// +optional
	ClusterSelector *metav1.LabelSelector `json:"clusterSelector,omitempty"`

	// Failover says what happens when a cluster becomes unhealthy.
	// +kubebuilder:default={}
	// +optional
	Failover FailoverSpec `json:"failover,omitempty"`

	// Spillover says what happens when a cluster cannot place some of its replicas (its
	// accelerators are out: a stockout).
	// +kubebuilder:default={}
	// +optional
	Spillover SpilloverSpec `json:"spillover,omitempty"`
}

// SpilloverSpec moves the replicas a cluster cannot schedule, and only those, to the other
// clusters by weight within their maxReplicas, and brings them back when the cluster can
// place pods again. One of them stays requested in the cluster meanwhile: the cluster
// autoscaler keeps trying to make room for it, and when it is scheduled the cluster has
// room again.
type SpilloverSpec struct {
	// Policy is Spill (the replicas a cluster cannot schedule run in the others) or None
	// (they wait in their cluster).
	// +kubebuilder:default=Spill
	// +optional
	Policy SpilloverPolicy `json:"policy,omitempty"`

	// After is how long replicas stay unschedulable before they spill. Replicas for which
	// the cluster autoscaler reports that no scale-up can or did happen (NotTriggerScaleUp,
	// FailedScaleUp) spill at once.
	// +kubebuilder:default="2m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="spillover.after must be between 0s and 24h"
	// +optional
	After *metav1.Duration `json:"after,omitempty"`

	// ScaleUpTimeout is how long a node pool scale-up the cluster autoscaler reports for
	// them (TriggeredScaleUp) is waited for before they spill.
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="spillover.scaleUpTimeout must be between 0s and 24h"
	// +optional
	ScaleUpTimeout *metav1.Duration `json:"scaleUpTimeout,omitempty"`
}

// ClusterPlacement is one member cluster in placement.clusters.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",message="minReplicas must not exceed maxReplicas"
type ClusterPlacement struct {
	// Name of the member cluster.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Weight is this cluster's relative share of spec.replicas.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Weight *int32 `json:"weight,omitempty"`

	// MinReplicas this cluster runs whatever its weight.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// MaxReplicas this cluster runs at most, also during failover.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`

	// Overrides change the model server in this cluster only, for example another
	// accelerator in another region.
	// +optional
	Overrides *ClusterOverrides `json:"overrides,omitempty"`
}

// ClusterOverrides replace parts of spec.model in one cluster.
type ClusterOverrides struct {
	// Accelerator replaces model.accelerator.
	// +optional
	Accelerator *AcceleratorSpec `json:"accelerator,omitempty"`

	// Image replaces model.server.image and the image of every accelerator in this
	// cluster, except overrides.accelerator.image, which wins over it.
	// +kubebuilder:validation:MinLength=1
	// +optional
	Image string `json:"image,omitempty"`

	// Args replace model.server.args.
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:items:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.all(a, !a.startsWith('--model=') && a != '--model' && !a.startsWith('--port=') && a != '--port')",message="overrides.args must not set --model or --port"
	// +optional
	Args []string `json:"args,omitempty"`

	// Env is added to model.server.env (same names replace).
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// Command replaces model.server.command.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=4096
	// +optional
	Command []string `json:"command,omitempty"`

	// Probes replace model.server.probes, probe by probe.
	// +optional
	Probes *ProbesSpec `json:"probes,omitempty"`

	// StartupTimeout replaces model.server.startupTimeout.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('6h')",message="overrides.startupTimeout must be between 10s and 6h"
	// +optional
	StartupTimeout *metav1.Duration `json:"startupTimeout,omitempty"`

	// ComputeClass replaces model.computeClass.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`
	// +optional
	ComputeClass *string `json:"computeClass,omitempty"`
}

// FailoverSpec says when an unhealthy cluster's share moves and when it comes back.
type FailoverSpec struct {
	// Policy is Redistribute (move an unreachable cluster's share) or None.
	// +kubebuilder:default=Redistribute
	// +optional
	Policy FailoverPolicy `json:"policy,omitempty"`

	// UnhealthyAfter is how long a cluster is unreachable before its share moves (a
	// cluster that cannot schedule replicas spills them instead: placement.spillover).
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="failover.unhealthyAfter must be between 1s and 24h"
	// +optional
	UnhealthyAfter *metav1.Duration `json:"unhealthyAfter,omitempty"`

	// FailbackAfter is how long a cluster stays healthy before its share returns.
	// +kubebuilder:default="2m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="failover.failbackAfter must be between 0s and 24h"
	// +optional
	FailbackAfter *metav1.Duration `json:"failbackAfter,omitempty"`
}

// GatewaySpec is the cross-region Gateway in the config cluster.
// +kubebuilder:validation:XValidation:rule="!has(self.provider) || self.provider != 'InferencePoolImport' || (has(self.className) && self.className.size() > 0)",message="gateway.className is required for provider InferencePoolImport (the default class is GKE's)"
// +kubebuilder:validation:XValidation:rule="!has(self.logging) || !has(self.logging.enabled) || !self.logging.enabled || !has(self.provider) || self.provider == 'GKE'",message="gateway.logging is a GCPBackendPolicy setting: provider GKE only"
type GatewaySpec struct {
	// Provider is GKE (pools imported as GCPInferencePoolImport) or InferencePoolImport
	// (open source: the hub writes InferencePoolImports).
	// +kubebuilder:default=GKE
	// +optional
	Provider Provider `json:"provider,omitempty"`

	// Mode is MultiCluster (a "-mc" class in the config cluster routes to the pool imported
	// from every member) or Regional (a regional class in the one member that holds the pool
	// routes to the InferencePool itself). Unset, it follows the class:
	// gke-l7-regional-external-managed and gke-l7-rilb are Regional, any other MultiCluster.
	// +optional
	Mode GatewayMode `json:"mode,omitempty"`

	// Name of the Gateway; several services may share one.
	// +kubebuilder:default=cross-region-gateway
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Name string `json:"name,omitempty"`

	// ClassName is the GatewayClass; for provider GKE it defaults to
	// gke-l7-cross-regional-internal-managed-mc, or gke-l7-regional-external-managed in
	// mode Regional.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$`
	// +optional
	ClassName string `json:"className,omitempty"`

	// Port of the Gateway's HTTP listener.
	// +kubebuilder:default=80
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// PathPrefix the HTTPRoute matches.
	// +kubebuilder:default="/v1"
	// +kubebuilder:validation:Pattern=`^/[-A-Za-z0-9._~/%]*$`
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	PathPrefix string `json:"pathPrefix,omitempty"`

	// BodyBasedRouting deploys the Inference Extension's body-based router beside the
	// Gateway (shared by the services on that Gateway, removed with the last) and routes on
	// the X-Gateway-Model-Name header it sets from the request body, so a model name the
	// service does not serve gets no route.
	// +optional
	BodyBasedRouting bool `json:"bodyBasedRouting,omitempty"`

	// HealthCheck is the load balancer's health check of the model servers: on the imported
	// pool, or in mode Regional on the InferencePool.
	// +kubebuilder:default={}
	// +optional
	HealthCheck HealthCheckSpec `json:"healthCheck,omitempty"`

	// TimeoutSeconds is the load balancer's request timeout; set it to at least twice the
	// P99 request latency. In mode Regional it is the timeout of the InferencePool's
	// GCPBackendPolicy (the inferencepool chart's 300 s otherwise).
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	// +optional
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`

	// Logging enables the load balancer's access logs (GKE).
	// +optional
	Logging *LoggingSpec `json:"logging,omitempty"`
}

// HealthCheckSpec is an HTTP health check of the model servers.
type HealthCheckSpec struct {
	// Path of the health endpoint.
	// +kubebuilder:default="/health"
	// +kubebuilder:validation:Pattern=`^/[-A-Za-z0-9._~/%?=&]*$`
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Path string `json:"path,omitempty"`

	// Port probed; defaults to model.server.port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`
}

// LoggingSpec is the load balancer's access logging.
type LoggingSpec struct {
	// Enabled turns access logging on.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// SampleRate is the fraction of requests logged, 0.0 to 1.0.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	// +kubebuilder:default=1
	// +optional
	SampleRate *float64 `json:"sampleRate,omitempty"`
}

// BalancingSpec is the cross-cluster load-balancing signal; the modes are exclusive. It
// applies to a multi-cluster Gateway (a regional Gateway's endpoint picker chooses among
// the one cluster's replicas).
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'InFlight' || has(self.maxInFlightRequestsPerEndpoint)",message="balancing.maxInFlightRequestsPerEndpoint is required when balancing.mode is InFlight"
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'InFlight' || !has(self.customMetric)",message="balancing.customMetric and balancing.mode InFlight are mutually exclusive"
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'CustomMetrics' || !has(self.maxInFlightRequestsPerEndpoint)",message="balancing.maxInFlightRequestsPerEndpoint and balancing.mode CustomMetrics are mutually exclusive"
type BalancingSpec struct {
	// Mode is CustomMetrics (KV-cache use) or InFlight (requests per endpoint).
	// +kubebuilder:default=CustomMetrics
	// +optional
	Mode BalancingMode `json:"mode,omitempty"`

	// CustomMetric is the exported KV-cache metric and its target (mode CustomMetrics).
	// +optional
	CustomMetric *CustomMetricSpec `json:"customMetric,omitempty"`

	// MaxInFlightRequestsPerEndpoint is each endpoint's capacity (mode InFlight).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	MaxInFlightRequestsPerEndpoint *int32 `json:"maxInFlightRequestsPerEndpoint,omitempty"`

	// TrafficDuration is Long for LLM requests that stream for seconds, or Short.
	// +kubebuilder:default=Long
	// +optional
	TrafficDuration TrafficDuration `json:"trafficDuration,omitempty"`
}

// CustomMetricSpec is the KV-cache metric exported by AutoscalingMetric and balanced on.
type CustomMetricSpec struct {
	// Name is the exported metric's name (gke.named_metrics.<name> in the policy).
	// +kubebuilder:default=kv-cache
	// +kubebuilder:validation:MaxLength=59
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Name string `json:"name,omitempty"`

	// MaxUtilization is the target use in percent; 60 is a good start.
	// +kubebuilder:default=60
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxUtilization int32 `json:"maxUtilization,omitempty"`

	// DryRun reports the metric without balancing on it.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// EndpointPickerSpec configures the endpoint picker (EPP) of each member's InferencePool.
type EndpointPickerSpec struct {
	// Image of the endpoint picker.
	// +kubebuilder:default="registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0"
	// +kubebuilder:validation:MinLength=1
	// +optional
	Image string `json:"image,omitempty"`

	// Replicas of the endpoint picker in each member.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// FailureMode is the InferencePool's behaviour when the picker is down.
	// +kubebuilder:default=FailOpen
	// +optional
	FailureMode EndpointPickerFailureMode `json:"failureMode,omitempty"`

	// Monitoring exports the picker's metrics (inference_pool_average_kv_cache_utilization,
	// queue size, ...) to a monitoring system.
	// +optional
	Monitoring *EndpointPickerMonitoring `json:"monitoring,omitempty"`
}

// EndpointPickerMonitoring says where the endpoint picker's metrics go.
type EndpointPickerMonitoring struct {
	// GKE renders what the inferencepool chart (v1.5.0) renders for provider gke with
	// inferenceExtension.monitoring.prometheus.enabled: the metrics-reader ServiceAccount, its
	// token Secret, RBAC, the Managed Prometheus collector's access and a PodMonitoring
	// (provider GKE only).
	// +optional
	GKE bool `json:"gke,omitempty"`
}

// FleetInferenceServiceStatus is what the hub observes across the fleet.
type FleetInferenceServiceStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Propagated, RoutesProgrammed, Degraded, FailingOver.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Replicas is the desired number of replicas across the fleet.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// ReadyReplicas is the number of ready replicas across the fleet.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// Selector selects the model-server pods in every member (app=<name>), for the scale
	// subresource.
	// +optional
	Selector string `json:"selector,omitempty"`

	// ReplicasReady is "ready/desired", for the printer column.
	// +optional
	ReplicasReady string `json:"replicasReady,omitempty"`

	// ClustersReady is "ready/selected" member clusters, for the printer column.
	// +optional
	ClustersReady string `json:"clustersReady,omitempty"`

	// Placement is the hub's decision of where the replicas run: each selected cluster's
	// share and why. Member sync follows it; the outcome lands in clusters.
	// +optional
	Placement *PlacementStatus `json:"placement,omitempty"`

	// Clusters is the outcome in each member cluster the service is placed on (or is
	// being removed from). Each entry is what the hub's sync of that one member found.
	// +listType=map
	// +listMapKey=name
	// +optional
	Clusters []ClusterStatus `json:"clusters,omitempty"`

	// Autoscaling is the hub autoscaler's last decision, with autoscaling set.
	// +optional
	Autoscaling *AutoscalingStatus `json:"autoscaling,omitempty"`

	// Gateway is the config cluster's Gateway as observed.
	// +optional
	Gateway *GatewayStatus `json:"gateway,omitempty"`
}

// AutoscalingStatus is the autoscaler's last decision and what it saw. It is written when
// the decision or the signals change, not at every read.
type AutoscalingStatus struct {
	// DesiredReplicas is the fleet total the autoscaler set; placement splits it.
	DesiredReplicas int32 `json:"desiredReplicas"`
	// RecommendedReplicas is what the signals asked for, before the stabilization
	// windows, step limits and bounds.
	RecommendedReplicas int32 `json:"recommendedReplicas"`
	// Reason is what settled desiredReplicas: ScaledUp, ScaledDown, WithinTolerance,
	// NoMetrics, Stabilizing, ScaleUpLimit, ScaleDownLimit, TooFewReplicas,
	// TooManyReplicas, ScalingDisabled, Idle (at zero, or gone there) or Activated (back
	// from zero on a request).
	Reason string `json:"reason"`
	// Message says it with the numbers.
	// +optional
	Message string `json:"message,omitempty"`
	// Metrics are the signals as last read, averaged over the servers that reported.
	// +listType=map
	// +listMapKey=type
	// +optional
	Metrics []AutoscalingMetricStatus `json:"metrics,omitempty"`
	// LastScaleTime is when it last changed the total.
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`
	// IdleSince, with minReplicas 0, is since when no server has had a request and no
	// endpoint picker received one; idleWindowSeconds after it the fleet goes to zero.
	// +optional
	IdleSince *metav1.Time `json:"idleSince,omitempty"`
}

// AutoscalingMetricStatus is one signal as last read.
type AutoscalingMetricStatus struct {
	// Type is the signal.
	Type AutoscalingMetricType `json:"type"`
	// Average is its mean over the servers that reported it (percent for
	// KVCacheUtilization).
	// +optional
	Average *resource.Quantity `json:"average,omitempty"`
	// Servers is how many servers reported it.
	Servers int32 `json:"servers"`
}

// PlacementStatus is where a service's replicas go, as the hub last decided.
type PlacementStatus struct {
	// ObservedGeneration is the service generation the decision was made for. Member sync
	// acts only on a decision for the current generation.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Clusters are the clusters placement selects, in placement order, with their shares.
	// +listType=map
	// +listMapKey=name
	// +optional
	Clusters []ClusterDecision `json:"clusters,omitempty"`
	// Unplaced replicas fit no healthy cluster (every one is at its maxReplicas); they
	// stay with the failed-over clusters they belong to.
	// +optional
	Unplaced int32 `json:"unplaced,omitempty"`
}

// PlacementReason says why a cluster has the share it has.
// +kubebuilder:validation:Enum=Placed;Covering;FailedOver;Cordoned;NotRegistered;OutOfCapacity
type PlacementReason string

const (
	// PlacementPlaced: the cluster's share by weight, within its minReplicas and maxReplicas.
	PlacementPlaced PlacementReason = "Placed"
	// PlacementCovering: more than its share, for failed-over clusters or until a cluster
	// gaining replicas has them ready (make before break).
	PlacementCovering PlacementReason = "Covering"
	// PlacementFailedOver: unhealthy for failover.unhealthyAfter (or healthy again for less
	// than failbackAfter); its share runs in the others.
	PlacementFailedOver PlacementReason = "FailedOver"
	// PlacementCordoned: taken out by a cordon (a drill, or the operator).
	PlacementCordoned PlacementReason = "Cordoned"
	// PlacementOutOfCapacity: some of its share could not be scheduled and runs in the
	// others (spilled); one of them stays requested here until the cluster has room.
	PlacementOutOfCapacity PlacementReason = "OutOfCapacity"
	// PlacementNotRegistered: placement.clusters names it, but no such cluster is
	// registered with the hub.
	PlacementNotRegistered PlacementReason = "NotRegistered"
)

// ClusterDecision is one cluster's share of a service.
type ClusterDecision struct {
	// Name of the member cluster.
	Name string `json:"name"`
	// Region of the member cluster.
	// +optional
	Region string `json:"region,omitempty"`
	// Replicas the cluster runs.
	Replicas int32 `json:"replicas"`
	// Reason the cluster has this share.
	Reason PlacementReason `json:"reason"`
	// Message says more, for a human.
	// +optional
	Message string `json:"message,omitempty"`
	// Since is when the cluster got this share for this reason.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// Spilled is how many replicas of the cluster's share it could not schedule and run
	// in other clusters (spillover). Replicas is then its share less these, plus the one
	// left requested here.
	// +optional
	Spilled int32 `json:"spilled,omitempty"`
	// Borrowed is how many of Replicas the cluster runs for clusters that could not
	// schedule them (spillover).
	// +optional
	Borrowed int32 `json:"borrowed,omitempty"`
}

// FailedOver reports whether the cluster's share runs elsewhere.
func (d ClusterDecision) FailedOver() bool {
	return d.Reason == PlacementFailedOver || d.Reason == PlacementCordoned
}

// Decision returns the decision for one cluster, if placement has one.
func (p *PlacementStatus) Decision(name string) (ClusterDecision, bool) {
	if p != nil {
		for _, d := range p.Clusters {
			if d.Name == name {
				return d, true
			}
		}
	}
	return ClusterDecision{}, false
}

// Cluster returns the status entry of one cluster, if there is one.
func (s *FleetInferenceServiceStatus) Cluster(name string) (ClusterStatus, bool) {
	for _, c := range s.Clusters {
		if c.Name == name {
			return c, true
		}
	}
	return ClusterStatus{}, false
}

// ClusterStatus is the service's state in one member cluster.
type ClusterStatus struct {
	// Name of the member cluster.
	Name string `json:"name"`
	// Region of the member cluster.
	// +optional
	Region string `json:"region,omitempty"`
	// ObservedGeneration is the service generation the hub last synced to this cluster.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Reason is the outcome of the last sync: Synced, Conflict, SyncFailed,
	// ClusterUnreachable, Connecting, ClusterNotRegistered, CleanupBlocked or CleanedUp.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Reason string `json:"reason,omitempty"`
	// Reachable is whether the hub reached the cluster's API on the last sync.
	Reachable bool `json:"reachable"`
	// DesiredReplicas is this cluster's share.
	DesiredReplicas int32 `json:"desiredReplicas"`
	// ScaledBy names the member's own autoscaler (HorizontalPodAutoscaler/<name>) that
	// sets the model Deployment's replicas; the hub leaves them to it, and
	// desiredReplicas is then what it set.
	// +optional
	ScaledBy string `json:"scaledBy,omitempty"`
	// ReadyReplicas is what the cluster's model Deployment reports ready.
	ReadyReplicas int32 `json:"readyReplicas"`
	// ScheduledReplicas is how many of the service's model-server pods are on a node
	// (starting, loading the model or ready), when some cannot be scheduled.
	// +optional
	ScheduledReplicas int32 `json:"scheduledReplicas,omitempty"`
	// UnschedulableReplicas is how many of the service's model-server pods the cluster
	// cannot schedule.
	// +optional
	UnschedulableReplicas int32 `json:"unschedulableReplicas,omitempty"`
	// ScaleUp is what the cluster autoscaler last said of those pods.
	// +optional
	ScaleUp ScaleUpState `json:"scaleUp,omitempty"`
	// Exported is whether the cluster's InferencePool is exported to the config cluster.
	// +optional
	Exported bool `json:"exported,omitempty"`
	// LastSyncTime is when the hub last applied the desired objects.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
	// Message says what went wrong, if anything.
	// +optional
	Message string `json:"message,omitempty"`
	// Health is the cluster's state for this service: Healthy, Degraded (reachable but
	// unable to run its share, e.g. pods unschedulable) or Unreachable.
	// +optional
	Health ClusterHealth `json:"health,omitempty"`
	// HealthSince is when Health last changed.
	// +optional
	HealthSince *metav1.Time `json:"healthSince,omitempty"`
	// HealthReason says why the cluster is not Healthy.
	// +optional
	HealthReason string `json:"healthReason,omitempty"`
	// FailedOver is true while this cluster's share runs in other clusters.
	// +optional
	FailedOver bool `json:"failedOver,omitempty"`
}

// ClusterHealth is a member cluster's state as the hub sees it for one service.
// +kubebuilder:validation:Enum=Healthy;Degraded;Unreachable
type ClusterHealth string

const (
	Healthy     ClusterHealth = "Healthy"
	Degraded    ClusterHealth = "Degraded"
	Unreachable ClusterHealth = "Unreachable"
)

// AnnotationCordon on a FleetInferenceService takes the clusters it lists
// (comma-separated) out of the service's placement at once, as a failover would: failover
// drills use it. A cluster cordoned for every service carries fleet.AnnotationCordoned on
// its registration Secret instead.
const AnnotationCordon = "fleet.inferfleet.dev/cordon"

// LabelCopyToMembers, set to "true" on a Secret, lets the hub copy it into the member
// clusters that run a service naming it (spec.model.server.huggingFaceTokenSecretRef).
// The hub copies no other Secret: a service's author can hand the hub only Secrets that
// someone chose to share with members (and, with the admission policy in
// config/admission, only Secrets the author may read).
const LabelCopyToMembers = "fleet.inferfleet.dev/copy-to-members"

// Cordons lists, in order, the clusters the service's cordon annotation names.
func (s *FleetInferenceService) Cordons() []string {
	var out []string
	for _, n := range strings.Split(s.Annotations[AnnotationCordon], ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// GatewayStatus is the config cluster's Gateway as observed.
type GatewayStatus struct {
	// Cluster holds the Gateway and the service's routes: empty for the config cluster
	// (mode MultiCluster), the member's name in mode Regional.
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// Addresses copied from the Gateway's status.
	// +optional
	Addresses []string `json:"addresses,omitempty"`
}

// FleetInferenceServiceList is a list of FleetInferenceServices.
// +kubebuilder:object:root=true
type FleetInferenceServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FleetInferenceService `json:"items"`
}

func init() {
	SchemeBuilder.Register(&FleetInferenceService{}, &FleetInferenceServiceList{})
}
