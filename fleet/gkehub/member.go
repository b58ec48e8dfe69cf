package gkehub

import (
	"fmt"
	"maps"
	"strings"

	"cloud.google.com/go/gkehub/apiv1beta1/gkehubpb"

	"github.com/inferfleet/inferfleet/fleet"
)

// Member is a GKE Hub membership as the hub places on it: the fleet.Cluster (name, region,
// labels) plus where it lives in the fleet and how to reach it.
type Member struct {
	fleet.Cluster
	// ResourceLink names the GKE cluster behind the membership,
	// //container.googleapis.com/projects/P/locations/L/clusters/C.
	ResourceLink string
	// Location is the membership's location ("global" or a region), which picks the
	// Connect Gateway host; the cluster's own location is in ResourceLink.
	Location string
	// ConnectGatewayHost is the Connect Gateway URL that proxies to the cluster's API server.
	ConnectGatewayHost string
	// Ready is true when the membership is READY and its GKE cluster still exists.
	Ready bool
}

const (
	gkeResourcePrefix  = "//container.googleapis.com/"
	connectGatewayHost = "connectgateway.googleapis.com"
	globalLocation     = "global"
)

// MemberFromMembership reads a Member from a GKE Hub membership. projectNumber goes into
// the Connect Gateway URL, which needs the number, not the id; empty means the project
// segment of the membership's name. Memberships that are not GKE clusters (attached,
// on-prem, edge) have no resource link to take a region from and are an error, so the
// caller skips them with the reason.
func MemberFromMembership(m *gkehubpb.Membership, projectNumber string) (Member, error) {
	project, location, name, err := parseMembershipName(m.GetName())
	if err != nil {
		return Member{}, err
	}
	gke := m.GetEndpoint().GetGkeCluster()
	link := gke.GetResourceLink()
	if link == "" {
		return Member{}, fmt.Errorf("membership %s has no GKE cluster endpoint", m.GetName())
	}
	clusterLocation, err := parseClusterLocation(link)
	if err != nil {
		return Member{}, fmt.Errorf("membership %s: %w", m.GetName(), err)
	}
	region := regionOf(clusterLocation)
	labels := make(map[string]string, len(m.GetLabels())+1)
	maps.Copy(labels, m.GetLabels())
	// The region is also a label so placement selectors can match on it, as with the
	// kubeconfig Secrets (fleet.ClusterFromSecret).
	labels[fleet.RegionLabel] = region
	if projectNumber == "" {
		projectNumber = project
	}
	return Member{
		Cluster:            fleet.Cluster{Name: name, Region: region, Labels: labels},
		ResourceLink:       link,
		Location:           location,
		ConnectGatewayHost: connectGatewayURL(projectNumber, location, name),
		// A membership outlives its cluster: cluster_missing says the cluster is gone.
		Ready: m.GetState().GetCode() == gkehubpb.MembershipState_READY && !gke.GetClusterMissing(),
	}, nil
}

// parseMembershipName splits projects/P/locations/L/memberships/NAME.
func parseMembershipName(full string) (project, location, name string, err error) {
	p := strings.Split(full, "/")
	if len(p) != 6 || p[0] != "projects" || p[2] != "locations" || p[4] != "memberships" || p[1] == "" || p[3] == "" || p[5] == "" {
		return "", "", "", fmt.Errorf("membership name %q is not projects/P/locations/L/memberships/NAME", full)
	}
	return p[1], p[3], p[5], nil
}

// parseClusterLocation returns the zone or region of a GKE resource link. Older links
// say zones/Z instead of locations/L.
func parseClusterLocation(link string) (string, error) {
	p := strings.Split(strings.TrimPrefix(link, gkeResourcePrefix), "/")
	if !strings.HasPrefix(link, gkeResourcePrefix) || len(p) != 6 || p[0] != "projects" || (p[2] != "locations" && p[2] != "zones") || p[4] != "clusters" || p[3] == "" {
		return "", fmt.Errorf("GKE resource link %q is not %sprojects/P/locations/L/clusters/C", link, gkeResourcePrefix)
	}
	return p[3], nil
}

// regionOf maps a zone (us-east4-a) to its region (us-east4); a region stays as it is.
// Zones are a region plus a one-letter suffix.
func regionOf(location string) string {
	i := strings.LastIndexByte(location, '-')
	if i < 0 || strings.Count(location, "-") < 2 {
		return location
	}
	if suffix := location[i+1:]; len(suffix) == 1 && suffix[0] >= 'a' && suffix[0] <= 'z' {
		return location[:i]
	}
	return location
}

// connectGatewayURL is the API server URL of a membership behind the Connect Gateway.
// Regional memberships are served by the gateway in their region.
func connectGatewayURL(projectNumber, location, name string) string {
	host := connectGatewayHost
	if location != globalLocation {
		host = location + "-" + host
	}
	return fmt.Sprintf("https://%s/v1/projects/%s/locations/%s/gkeMemberships/%s", host, projectNumber, location, name)
}
