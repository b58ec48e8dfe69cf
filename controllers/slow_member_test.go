package controllers_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/e2e/framework"
)

// pauseProxy forwards TCP to a member's API server and can hang: while paused it accepts
// connections and reads, but forwards nothing, as an API server that stopped answering
// would look to the hub.
type pauseProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
	conns  []net.Conn
}

func newPauseProxy(t *testing.T, target string) *pauseProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pauseProxy{ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *pauseProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *pauseProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.paused {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

func (p *pauseProxy) setPaused(v bool) {
	p.mu.Lock()
	p.paused = v
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *pauseProxy) close() {
	p.setPaused(false)
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// TestHungMemberDelaysNoOther: with one member's API server hung for longer than the
// hub's bound on a member's work, a spec change still reaches the other member and is
// recorded in its status entry at once, not after the hung member's timeout.
func TestHungMemberDelaysNoOther(t *testing.T) {
	var proxy *pauseProxy
	f := startFleetVia(t, app.HubOptions{MemberTimeout: 20 * time.Second}, func(name string, cfg *rest.Config) *rest.Config {
		if name != "east" {
			return cfg
		}
		u, err := url.Parse(cfg.Host)
		if err != nil || u.Host == "" {
			t.Fatalf("member host %q: %v", cfg.Host, err)
		}
		proxy = newPauseProxy(t, u.Host)
		via := rest.CopyConfig(cfg)
		via.Host = "https://" + proxy.ln.Addr().String()
		return via
	}, "west", "east")
	ctx := context.Background()
	hub := f.hub.Client
	createToken(ctx, t, hub)
	svc := twoRegionService("west", "east")
	svc.Spec.Replicas = 2
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(svc)
	inSync := func(got *v1alpha1.FleetInferenceService, name string) error {
		st, ok := got.Status.Cluster(name)
		if !ok || st.Reason != controllers.ReasonSynced || st.ObservedGeneration != got.Generation {
			return fmt.Errorf("%s entry %+v at generation %d", name, st, got.Generation)
		}
		return nil
	}
	eventually(t, 30*time.Second, "both in sync", func() error {
		got := &v1alpha1.FleetInferenceService{}
		if err := hub.Get(ctx, key, got); err != nil {
			return err
		}
		if err := inSync(got, "west"); err != nil {
			return err
		}
		return inSync(got, "east")
	})

	proxy.setPaused(true)
	framework.UpdateService(t, hub, key, func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Model.Server.Args = append(s.Spec.Model.Server.Args, "--enable-prefix-caching")
	})
	began := time.Now()
	// Well within the 20 s a sync of the hung member may take.
	eventually(t, 8*time.Second, "west synced and recorded while east hangs", func() error {
		d, err := getDeployment(ctx, f.members["west"].Client, "serving", "llama")
		if err != nil {
			return err
		}
		if !framework.HasServerArg(d.Spec.Template.Spec.Containers[0], "--enable-prefix-caching") {
			return fmt.Errorf("west not rolled out")
		}
		got := &v1alpha1.FleetInferenceService{}
		if err := hub.Get(ctx, key, got); err != nil {
			return err
		}
		return inSync(got, "west")
	})
	t.Logf("west in sync %s after the change, east hung", time.Since(began).Round(10*time.Millisecond))

	proxy.setPaused(false)
	eventually(t, 45*time.Second, "east in sync once it answers again", func() error {
		got := &v1alpha1.FleetInferenceService{}
		if err := hub.Get(ctx, key, got); err != nil {
			return err
		}
		return inSync(got, "east")
	})
}
