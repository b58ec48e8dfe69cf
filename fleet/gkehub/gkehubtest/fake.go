// Package gkehubtest holds fakes of the Google Cloud APIs the gkehub provider calls, on
// local gRPC servers: the GKE Hub membership service and the GKE cluster manager. The
// provider talks to them with the real clients.
package gkehubtest

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/container/apiv1/containerpb"
	"cloud.google.com/go/gkehub/apiv1beta1/gkehubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Hub serves ListMemberships from what it is told.
type Hub struct {
	gkehubpb.UnimplementedGkeHubMembershipServiceServer

	mu          sync.Mutex
	memberships []*gkehubpb.Membership
	unreachable []string
	failNext    int
	calls       []Call
}

// Call is one ListMemberships request.
type Call struct {
	At     time.Time
	Parent string
	Failed bool
}

// ListMemberships returns every membership (or Unavailable while told to fail).
func (f *Hub) ListMemberships(_ context.Context, req *gkehubpb.ListMembershipsRequest) (*gkehubpb.ListMembershipsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := Call{At: time.Now(), Parent: req.GetParent()}
	if f.failNext > 0 {
		f.failNext--
		call.Failed = true
		f.calls = append(f.calls, call)
		return nil, status.Error(codes.Unavailable, "fake hub unavailable")
	}
	f.calls = append(f.calls, call)
	resp := &gkehubpb.ListMembershipsResponse{Unreachable: f.unreachable}
	for _, m := range f.memberships {
		resp.Resources = append(resp.Resources, proto.Clone(m).(*gkehubpb.Membership))
	}
	return resp, nil
}

// Set replaces the memberships the hub returns.
func (f *Hub) Set(ms ...*gkehubpb.Membership) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.memberships = ms
}

// SetUnreachable sets the locations the hub reports unreachable.
func (f *Hub) SetUnreachable(locations ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unreachable = locations
}

// Fail makes the next n calls fail with Unavailable.
func (f *Hub) Fail(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = n
}

// Calls returns the requests so far.
func (f *Hub) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// Start serves a Hub on 127.0.0.1 until the test ends and returns the client options that
// reach it.
func Start(t testing.TB) (*Hub, []option.ClientOption) {
	t.Helper()
	hub := &Hub{}
	return hub, serve(t, func(s *grpc.Server) { gkehubpb.RegisterGkeHubMembershipServiceServer(s, hub) })
}

// Membership builds a GKE cluster membership of project p as the API returns it.
func Membership(location, name, clusterLocation string, state gkehubpb.MembershipState_Code, labels map[string]string) *gkehubpb.Membership {
	return &gkehubpb.Membership{
		Name:   fmt.Sprintf("projects/p/locations/%s/memberships/%s", location, name),
		Labels: labels,
		State:  &gkehubpb.MembershipState{Code: state},
		Type: &gkehubpb.Membership_Endpoint{Endpoint: &gkehubpb.MembershipEndpoint{
			Type: &gkehubpb.MembershipEndpoint_GkeCluster{GkeCluster: &gkehubpb.GkeCluster{
				ResourceLink: fmt.Sprintf("//container.googleapis.com/projects/p/locations/%s/clusters/%s", clusterLocation, name),
			}},
		}},
	}
}

// ClusterManager serves GetCluster (the GKE API) from what it is told.
type ClusterManager struct {
	containerpb.UnimplementedClusterManagerServer

	mu       sync.Mutex
	clusters map[string]*containerpb.Cluster // by projects/P/locations/L/clusters/C
	asked    []string
}

// GetCluster returns the cluster of that name, or NotFound.
func (f *ClusterManager) GetCluster(_ context.Context, req *containerpb.GetClusterRequest) (*containerpb.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, req.GetName())
	c, ok := f.clusters[req.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "cluster %s not found", req.GetName())
	}
	return proto.Clone(c).(*containerpb.Cluster), nil
}

// Set makes a cluster answer with its control-plane endpoint (host[:port]) and CA (PEM).
func (f *ClusterManager) Set(name, endpoint string, caPEM []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clusters[name] = &containerpb.Cluster{
		Name: name[strings.LastIndexByte(name, '/')+1:], Endpoint: endpoint, Status: containerpb.Cluster_RUNNING,
		MasterAuth: &containerpb.MasterAuth{ClusterCaCertificate: base64.StdEncoding.EncodeToString(caPEM)},
	}
}

// Asked returns the cluster names GetCluster was asked for.
func (f *ClusterManager) Asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.asked...)
}

// StartClusterManager serves a ClusterManager on 127.0.0.1 until the test ends and returns
// the client options that reach it.
func StartClusterManager(t testing.TB) (*ClusterManager, []option.ClientOption) {
	t.Helper()
	f := &ClusterManager{clusters: map[string]*containerpb.Cluster{}}
	return f, serve(t, func(s *grpc.Server) { containerpb.RegisterClusterManagerServer(s, f) })
}

// serve runs a gRPC server on 127.0.0.1 until the test ends.
func serve(t testing.TB, register func(*grpc.Server)) []option.ClientOption {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return []option.ClientOption{
		option.WithEndpoint(lis.Addr().String()),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}
