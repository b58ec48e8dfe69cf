package localfleet

import (
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/inferfleet/inferfleet/fleet"
)

// Node labels GKE puts on accelerator nodes; rendered workloads select on them.
const (
	LabelGKEAccelerator    = fleet.LabelGKEAccelerator
	LabelGKETPUAccelerator = fleet.LabelGKETPUAccelerator
	LabelGKETPUTopology    = fleet.LabelGKETPUTopology
	LabelRegion            = fleet.RegionLabel
	LabelInstanceType      = "node.kubernetes.io/instance-type"

	ResourceGPU = fleet.ResourceGPU
	ResourceTPU = fleet.ResourceTPU

	// KwokNodeAnnotation marks the nodes this package's kwok manages.
	KwokNodeAnnotation = "kwok.x-k8s.io/node"
)

// GPUNodes returns n fake GKE GPU nodes of acceleratorType (e.g. "nvidia-h100-80gb") with
// gpusPerNode GPUs each, named "<acceleratorType>-<i>".
func GPUNodes(region, acceleratorType string, n, gpusPerNode int) []NodeSpec {
	return acceleratorNodes(acceleratorType, n, map[string]string{
		LabelGKEAccelerator: acceleratorType,
		LabelRegion:         region,
		LabelInstanceType:   gpuInstanceType(acceleratorType, gpusPerNode),
	}, ResourceGPU, gpusPerNode, "96", "1Ti")
}

// TPUNodes returns n fake GKE TPU nodes of tpuType (e.g. "tpu-v5-lite-podslice") and
// topology (e.g. "2x2") with chips TPU chips each, named "<tpuType>-<i>".
func TPUNodes(region, tpuType, topology string, n, chips int) []NodeSpec {
	return acceleratorNodes(tpuType, n, map[string]string{
		LabelGKETPUAccelerator: tpuType,
		LabelGKETPUTopology:    topology,
		LabelRegion:            region,
		LabelInstanceType:      tpuInstanceType(tpuType, chips),
	}, ResourceTPU, chips, "112", "192Gi")
}

// acceleratorNodes returns n nodes named "<prefix>-<i>" with the given labels, count of
// the accelerator resource, CPUs and memory (a machine type's), 110 pods and 1Ti of disk.
func acceleratorNodes(prefix string, n int, labels map[string]string, accelerator corev1.ResourceName, count int, cpu, memory string) []NodeSpec {
	nodes := make([]NodeSpec, 0, n)
	for i := range n {
		nodes = append(nodes, NodeSpec{
			Name:   fmt.Sprintf("%s-%d", prefix, i),
			Labels: maps.Clone(labels),
			Capacity: corev1.ResourceList{
				accelerator:                     *resource.NewQuantity(int64(count), resource.DecimalSI),
				corev1.ResourceCPU:              resource.MustParse(cpu),
				corev1.ResourceMemory:           resource.MustParse(memory),
				corev1.ResourcePods:             resource.MustParse("110"),
				corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
			},
		})
	}
	return nodes
}

// DefaultMembers is a two-region fleet named like the clusters of GKE's multi-cluster
// Inference Gateway guide: gke-west (europe-west3) and gke-east (us-east4), each with two 8×H100 nodes and one 2x2 TPU v5e node.
func DefaultMembers() []ClusterSpec {
	return []ClusterSpec{DefaultMember("gke-west", "europe-west3"), DefaultMember("gke-east", "us-east4")}
}

// DefaultMember is one member shaped like those of DefaultMembers.
func DefaultMember(name, region string) ClusterSpec {
	return ClusterSpec{
		Name:   name,
		Region: region,
		Labels: map[string]string{"tier": "gpu"},
		Nodes: append(GPUNodes(region, "nvidia-h100-80gb", 2, 8),
			TPUNodes(region, "tpu-v5-lite-podslice", "2x2", 1, 4)...),
	}
}

// gpuInstanceType names the GCE machine type that carries n GPUs of the given type, so
// node.kubernetes.io/instance-type looks like GKE's.
func gpuInstanceType(accel string, n int) string {
	switch accel {
	case "nvidia-h100-80gb":
		return fmt.Sprintf("a3-highgpu-%dg", n)
	case "nvidia-h100-mega-80gb":
		return "a3-megagpu-8g"
	case "nvidia-h200-141gb":
		return "a3-ultragpu-8g"
	case "nvidia-b200":
		return "a4-highgpu-8g"
	case "nvidia-a100-80gb":
		return fmt.Sprintf("a2-ultragpu-%dg", n)
	case "nvidia-tesla-a100":
		return fmt.Sprintf("a2-highgpu-%dg", n)
	case "nvidia-l4":
		if t, ok := map[int]string{1: "g2-standard-4", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"}[n]; ok {
			return t
		}
	}
	return fmt.Sprintf("%s-%dg", strings.TrimPrefix(accel, "nvidia-"), n)
}

func tpuInstanceType(tpu string, chips int) string {
	switch tpu {
	case "tpu-v5-lite-podslice":
		return fmt.Sprintf("ct5lp-hightpu-%dt", chips)
	case "tpu-v5p-slice":
		return fmt.Sprintf("ct5p-hightpu-%dt", chips)
	case "tpu-v6e-slice":
		return fmt.Sprintf("ct6e-standard-%dt", chips)
	}
	return fmt.Sprintf("%s-%dt", tpu, chips)
}
