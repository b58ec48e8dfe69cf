package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Host is a test host: a network namespace of its own, reached from this machine through
// a veth pair. The API server refuses to proxy to loopback pod IPs, so servers standing
// in for pods listen here, and test traffic stays on hosts the test made.
type Host struct {
	Name string // the network namespace, under /run/netns
	IP   string // the namespace side's address
}

// TestHost makes a network namespace and a veth pair to it on a random /30 in 10.0.0.0/8
// (test packages run in parallel), and removes them when the test ends. It needs root and
// the ip command.
func TestHost(t testing.TB) *Host {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("TestHost: making a network namespace for the test host needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("TestHost: the ip command (iproute2) is needed to make the test host's network namespace")
	}
	id := fmt.Sprintf("%08x", rand.Uint32())
	h := &Host{Name: "inferfleet-" + id}
	hostIf, nsIf := "ifh"+id, "ifn"+id // within the 15-character limit
	block := 10<<24 | rand.Uint32N(1<<22)<<2
	hostIP, nsIP := ipv4(block+1), ipv4(block+2)
	h.IP = nsIP

	ip(t, "netns", "add", h.Name)
	t.Cleanup(func() {
		// Deleting the host side takes the pair at once, even while sockets still hold
		// the namespace.
		_ = exec.Command("ip", "link", "del", hostIf).Run()
		_ = exec.Command("ip", "netns", "del", h.Name).Run()
	})
	ip(t, "link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", h.Name)
	ip(t, "addr", "add", hostIP+"/30", "dev", hostIf)
	ip(t, "link", "set", hostIf, "up")
	ip(t, "-n", h.Name, "addr", "add", nsIP+"/30", "dev", nsIf)
	ip(t, "-n", h.Name, "link", "set", nsIf, "up")
	ip(t, "-n", h.Name, "link", "set", "lo", "up")
	return h
}

// Listen opens a TCP listener on the host's IP inside its namespace, closed when the test
// ends. A listening socket stays in the namespace it was made in.
func (h *Host) Listen(t testing.TB) net.Listener {
	t.Helper()
	return h.ListenPort(t, 0)
}

// ListenPort is Listen on a given port (0: any free one), for a server that stands in for
// a pod on a port its manifest fixes.
func (h *Host) ListenPort(t testing.TB, port int) net.Listener {
	t.Helper()
	l, err := h.listen(port)
	if err != nil {
		t.Fatalf("listening on test host %s: %v", h.Name, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func (h *Host) listen(port int) (net.Listener, error) {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + h.Name)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("entering the namespace: %w", err)
	}
	l, lerr := net.Listen("tcp", net.JoinHostPort(h.IP, strconv.Itoa(port)))
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, so the runtime ends it with its goroutine.
		if lerr == nil {
			_ = l.Close()
		}
		return nil, fmt.Errorf("leaving the namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return l, lerr
}

func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func ipv4(v uint32) string {
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).String()
}
