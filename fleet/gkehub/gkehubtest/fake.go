// Package gkehubtest is a fake GKE Hub membership service on a local gRPC server, for tests
// of the gkehub provider and of a hub that discovers its members through it. The provider
// talks to it with the real GKE Hub client.
package gkehubtest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

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
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hub := &Hub{}
	srv := grpc.NewServer()
	gkehubpb.RegisterGkeHubMembershipServiceServer(srv, hub)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return hub, []option.ClientOption{
		option.WithEndpoint(lis.Addr().String()),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
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
