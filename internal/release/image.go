// Package release assembles the hub's container image without a container engine, and the
// checksums of a release, for `make release`.
//
// The image is what the Dockerfile builds (the static hub binary, run as non-root 65532 on a
// distroless-like base), assembled with go-containerregistry: its base layer holds the files
// distroless/static:nonroot provides that a static Go binary uses (passwd and group entries
// for root, nobody and nonroot, nsswitch.conf, /tmp, /home/nonroot); CA certificates are
// built into the hub (golang.org/x/crypto/x509roots/fallback), so none is copied in. Layers
// carry fixed timestamps, so the same binaries give the same digests.
package release

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// Entrypoint is where the hub binary lives in the image.
	Entrypoint = "/hub"
	// NonRoot is the user and group the hub runs as, distroless's nonroot.
	NonRoot = 65532
	// Source is the project's address, recorded in the image's labels.
	Source = "https://github.com/inferfleet/inferfleet"
)

// ImageMeta is what the image records of the build.
type ImageMeta struct {
	Version  string    // v1.2.3, the same as the binary's stamp
	Revision string    // the git commit, when known
	Created  time.Time // the commit's time (SOURCE_DATE_EPOCH); zero for the epoch
}

// HubImage is the single-platform hub image around binary (built for that platform).
func HubImage(binary string, platform v1.Platform, meta ImageMeta) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	if meta.Created.IsZero() {
		meta.Created = time.Unix(0, 0).UTC()
	}
	base, err := layer(baseFiles(), meta.Created)
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	hub, err := layer([]file{{name: Entrypoint[1:], mode: 0o755, data: bin}}, meta.Created)
	if err != nil {
		return nil, fmt.Errorf("hub layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: v1.Time{Time: meta.Created}, CreatedBy: "inferfleet release: base (passwd, group, nsswitch.conf, /tmp, /home/nonroot)"}},
		mutate.Addendum{Layer: hub, History: v1.History{Created: v1.Time{Time: meta.Created}, CreatedBy: "inferfleet release: " + Entrypoint + " " + meta.Version}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = platform.OS, platform.Architecture, platform.Variant
	cf.Created = v1.Time{Time: meta.Created}
	cf.Config.Entrypoint = []string{Entrypoint}
	cf.Config.User = fmt.Sprintf("%d:%d", NonRoot, NonRoot)
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Labels = labels(meta)
	return mutate.ConfigFile(img, cf)
}

// HubIndex is the multi-platform image: one HubImage per platform, from binaries keyed by
// platform ("linux/amd64").
func HubIndex(binaries map[string]string, meta ImageMeta) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range slices.Sorted(maps.Keys(binaries)) {
		platform, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, err
		}
		img, err := HubImage(binaries[p], *platform, meta)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: platform}})
	}
	return mutate.Annotations(idx, labels(meta)).(v1.ImageIndex), nil
}

// WriteLayout writes idx as an OCI image layout in dir, its index.json naming it with ref
// (a full reference, such as docker.io/inferfleet/hub:v1.2.3), as `docker buildx` and
// skopeo write layouts: `crane push DIR REF` pushes the multi-platform index, and a tar of
// DIR is what `docker load` takes as an OCI archive.
func WriteLayout(dir string, idx v1.ImageIndex, ref name.Reference) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref.Identifier(),
		"io.containerd.image.name":          containerdName(ref),
	}))
}

// containerdName is ref as containerd names images: Docker Hub is docker.io.
func containerdName(ref name.Reference) string {
	reg := ref.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + ref.Context().RepositoryStr() + ":" + ref.Identifier()
}

// WriteDockerArchive writes img as the tarball `docker load` has always taken, tagged tag.
func WriteDockerArchive(path string, tag name.Tag, img v1.Image) error {
	return tarball.WriteToFile(path, tag, img)
}

func labels(meta ImageMeta) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":    "inferfleet hub",
		"org.opencontainers.image.source":   Source,
		"org.opencontainers.image.version":  meta.Version,
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	if meta.Revision != "" {
		l["org.opencontainers.image.revision"] = meta.Revision
	}
	return l
}

type file struct {
	name string
	mode int64
	uid  int
	dir  bool
	data []byte
}

// baseFiles are distroless/static:nonroot's, as far as a static Go binary uses them.
func baseFiles() []file {
	return []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
				fmt.Sprintf("nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonRoot, NonRoot))},
		{name: "etc/group", mode: 0o644, data: []byte(
			"root:x:0:\nnobody:x:65534:\n" + fmt.Sprintf("nonroot:x:%d:\n", NonRoot))},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, uid: NonRoot, dir: true},
		{name: "root/", mode: 0o700, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
	}
}

// layer is a gzip-compressed OCI layer of files, every entry dated created.
func layer(files []file, created time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: created, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}
