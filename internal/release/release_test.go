package release_test

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"io"
	"log"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/inferfleet/inferfleet/internal/release"
	"github.com/inferfleet/inferfleet/internal/repo"
)

const testVersion = "v9.9.9-test"

// TestMakeRelease runs `make release` as a user does and checks everything it writes: the
// multi-platform image layout (both architectures, valid blobs, the hub as entrypoint, the
// binary inside stamped with the release's version), the docker archives, a push of the
// layout to a registry with `make push`, the chart package, fleetctl for every platform, and SHA256SUMS.
func TestMakeRelease(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	cmd := exec.Command("make", "release", "DIST_DIR="+dist, "VERSION="+testVersion, "IMAGE_REPOSITORY=example.com/platform/hub")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}

	// The layout names one multi-platform index, as `crane push DIR REF` and `docker load` take it.
	lp, err := layout.FromPath(filepath.Join(dist, "hub-oci"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || !tm.Manifests[0].MediaType.IsIndex() {
		t.Fatalf("index.json should name one image index, has %+v", tm.Manifests)
	}
	if a := tm.Manifests[0].Annotations; a["org.opencontainers.image.ref.name"] != testVersion ||
		a["io.containerd.image.name"] != "example.com/platform/hub:"+testVersion {
		t.Errorf("index.json annotations %v, want the tag %s and the image example.com/platform/hub:%s", a, testVersion, testVersion)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("the image index does not validate: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]v1.Image{}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("manifest %s has no platform", d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		images[d.Platform.String()] = img
	}
	if got := slices.Sorted(maps.Keys(images)); !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("platforms %v, want linux/amd64 and linux/arm64", got)
	}

	for p, img := range images {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS+"/"+cf.Architecture != p {
			t.Errorf("%s: config says %s/%s", p, cf.OS, cf.Architecture)
		}
		if !slices.Equal(cf.Config.Entrypoint, []string{"/hub"}) || cf.Config.User != "65532:65532" {
			t.Errorf("%s: entrypoint %v user %q, want [/hub] as 65532:65532", p, cf.Config.Entrypoint, cf.Config.User)
		}
		if v := cf.Config.Labels["org.opencontainers.image.version"]; v != testVersion {
			t.Errorf("%s: version label %q", p, v)
		}
		fs := extract(t, img)
		if !strings.Contains(string(fs["etc/passwd"].data), "nonroot:x:65532:65532:") {
			t.Errorf("%s: /etc/passwd has no nonroot user:\n%s", p, fs["etc/passwd"].data)
		}
		if tmp, ok := fs["tmp"]; !ok || tmp.mode != 0o1777 {
			t.Errorf("%s: /tmp missing or not 1777: %o (%v)", p, tmp.mode, slices.Sorted(maps.Keys(fs)))
		}
		hub, ok := fs["hub"]
		if !ok || hub.mode&0o111 == 0 {
			t.Fatalf("%s: /hub missing or not executable", p)
		}
		bin := filepath.Join(t.TempDir(), "hub")
		if err := os.WriteFile(bin, hub.data, 0o755); err != nil {
			t.Fatal(err)
		}
		checkBinary(t, bin, p)
		if p == "linux/amd64" { // this machine's own: run it as the image's entrypoint would
			out, err := exec.Command(bin, "--version").CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), "inferfleet hub "+testVersion+" (") {
				t.Errorf("the image's /hub --version: %v\n%s", err, out)
			}
		}

		// Each platform's docker archive is the same image (the build is reproducible).
		arch := filepath.Join(dist, "hub-"+testVersion+"-"+strings.ReplaceAll(p, "/", "-")+".docker.tar")
		tag, _ := name.NewTag("example.com/platform/hub:" + testVersion)
		dimg, err := tarball.ImageFromPath(arch, &tag)
		if err != nil {
			t.Fatalf("%s: docker archive: %v", p, err)
		}
		// (Docker archives carry Docker's manifest media types, so compare the configs,
		// which name every layer by its digest.)
		if c1, c2 := hash(t, img.ConfigName), hash(t, dimg.ConfigName); c1 != c2 {
			t.Errorf("%s: docker archive holds config %s, the layout %s", p, c2, c1)
		}
	}

	// `make push` (crane push of the layout) to a registry gives a multi-platform image
	// each platform pulls its own image from.
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	repository := strings.TrimPrefix(srv.URL, "http://") + "/inferfleet/hub"
	cmd = exec.Command("make", "push", "DIST_DIR="+dist, "VERSION="+testVersion, "IMAGE_REPOSITORY="+repository)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make push: %v\n%s", err, out)
	}
	ref, err := name.NewTag(repository + ":" + testVersion)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pull the pushed index: %v", err)
	}
	if d1, d2 := hash(t, pushed.Digest), hash(t, idx.Digest); d1 != d2 {
		t.Errorf("the registry holds index %s, the layout %s", d1, d2)
	}
	arm, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatalf("pull linux/arm64: %v", err)
	}
	if hash(t, arm.Digest) != hash(t, images["linux/arm64"].Digest) {
		t.Error("the registry serves linux/arm64 a different image than the layout's")
	}

	// The chart is packaged at the release's version, its image tag the release's.
	helm := filepath.Join(root, "bin", "helm")
	chart := filepath.Join(dist, "inferfleet-"+strings.TrimPrefix(testVersion, "v")+".tgz")
	out, err := exec.Command(helm, "show", "chart", chart).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "version: 9.9.9-test") || !strings.Contains(string(out), "appVersion: "+testVersion) {
		t.Errorf("helm show chart %s: %v\n%s", chart, err, out)
	}
	out, err = exec.Command(helm, "template", "hub", chart, "--set", "image.repository=example.com/platform/hub").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `image: "example.com/platform/hub:`+testVersion+`"`) {
		t.Errorf("the packaged chart does not run the release's image: %v\n%s", err, out)
	}

	// fleetctl for linux and darwin, amd64 and arm64.
	for _, p := range []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"} {
		checkBinary(t, filepath.Join(dist, "fleetctl-"+testVersion+"-"+strings.ReplaceAll(p, "/", "-")), p)
	}
	out, err = exec.Command(filepath.Join(dist, "fleetctl-"+testVersion+"-linux-amd64"), "version", "--client").CombinedOutput()
	if err != nil || !strings.Contains(string(out), testVersion) {
		t.Errorf("fleetctl version --client: %v\n%s", err, out)
	}

	// SHA256SUMS covers every file of the release, and each sum holds.
	files, err := release.VerifyChecksums(dist)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dist)
	var want []string
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != release.ChecksumsFile {
			want = append(want, e.Name())
		}
	}
	if !slices.Equal(files, want) || len(files) != 7 {
		t.Errorf("SHA256SUMS lists %v, the release holds %v (want 4 fleetctl, 2 archives, the chart)", files, want)
	}
}

// checkBinary checks a binary's build: for platform p, stamped with the release's version.
func checkBinary(t *testing.T, path, p string) {
	t.Helper()
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if got := settings["GOOS"] + "/" + settings["GOARCH"]; got != p {
		t.Errorf("%s: built for %s, want %s", filepath.Base(path), got, p)
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("%s: not a static -trimpath build: %v", filepath.Base(path), settings)
	}
	// -trimpath builds do not record -ldflags; the stamp is in the binary's data.
	if data, err := os.ReadFile(path); err != nil || !bytes.Contains(data, []byte(testVersion)) {
		t.Errorf("%s: not stamped with %s (%v)", filepath.Base(path), testVersion, err)
	}
	if strings.HasPrefix(p, "linux/") {
		f, err := elf.Open(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return
		}
		defer f.Close()
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[strings.TrimPrefix(p, "linux/")]
		if f.Machine != want {
			t.Errorf("%s: ELF machine %v, want %v", filepath.Base(path), f.Machine, want)
		}
	}
}

type entry struct {
	mode int64
	data []byte
}

// extract reads the image's flattened file system.
func extract(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	fs := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fs
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		fs[h.Name] = entry{mode: h.Mode, data: data}
	}
}

// hash is a digest the go-containerregistry accessor f returns, or the test's end.
func hash(t *testing.T, f func() (v1.Hash, error)) v1.Hash {
	t.Helper()
	h, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
