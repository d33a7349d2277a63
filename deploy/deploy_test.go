// Package deploy holds Warden's container image and Kubernetes manifests.
// No container engine or cluster runs where Warden is built and tested, so
// this test checks the manifests against Kubernetes' own API types (strict
// decoding: a misspelt field is an error) and the promises the manifests
// make, and the Dockerfile with BuildKit's own checks and parser; the walk
// through is docs/deploy.md.
package deploy

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/opencontainers/go-digest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// TestManifests decodes every document of kubernetes/warden.yaml into its
// API type and checks the deployment as an operator relies on it: probes on
// /readyz and /healthz, a non-root read-only container, the secrets and the
// configuration mounted read-only, and the disruption budget and the
// Service selecting the pods.
func TestManifests(t *testing.T) {
	data, err := os.ReadFile("kubernetes/warden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var (
		cm  corev1.ConfigMap
		dep appsv1.Deployment
		pdb policyv1.PodDisruptionBudget
		svc corev1.Service
	)
	kinds := map[string]any{"ConfigMap": &cm, "Deployment": &dep, "PodDisruptionBudget": &pdb, "Service": &svc}
	seen := map[string]bool{}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var head struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatal(err)
		}
		into, ok := kinds[head.Kind]
		if !ok {
			t.Fatalf("unexpected kind %q", head.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
			t.Fatalf("%s: %v", head.Kind, err)
		}
		seen[head.Kind] = true
	}
	if len(seen) != len(kinds) {
		t.Fatalf("kinds %v, want %v", seen, kinds)
	}

	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 3 {
		t.Errorf("replicas %v, want at least 3", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template
	if sc := pod.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("the pod may run as root")
	}
	c := pod.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("no readiness probe on /readyz")
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("no liveness probe on /healthz")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("the container's root file system is writable or it may escalate")
	}
	memLimit := c.Resources.Limits.Memory()
	var softLimit string
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			softLimit = e.Value
		}
	}
	// GOMEMLIMIT's units are Go's (MiB); a quantity's are Kubernetes' (Mi).
	if soft, err := resource.ParseQuantity(strings.TrimSuffix(softLimit, "B")); err != nil || memLimit.IsZero() || soft.Cmp(*memLimit) >= 0 {
		t.Errorf("GOMEMLIMIT %q must be set below the memory limit %v, so the collector tightens before the pod is killed", softLimit, memLimit)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	for _, v := range pod.Spec.Volumes {
		m, ok := mounts[v.Name]
		switch {
		case !ok:
			t.Errorf("volume %s is not mounted", v.Name)
		case v.Secret != nil && !m.ReadOnly, v.ConfigMap != nil && !m.ReadOnly:
			t.Errorf("volume %s (a secret or the configuration) is mounted writable", v.Name)
		case v.ConfigMap != nil && v.ConfigMap.Name != cm.Name:
			t.Errorf("volume %s names ConfigMap %s, the manifests define %s", v.Name, v.ConfigMap.Name, cm.Name)
		}
	}
	labels := pod.Labels
	for name, sel := range map[string]map[string]string{"PodDisruptionBudget": pdb.Spec.Selector.MatchLabels, "Service": svc.Spec.Selector, "Deployment": dep.Spec.Selector.MatchLabels} {
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("the %s selects %s=%s, the pods are labelled %v", name, k, v, labels)
			}
		}
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 || pdb.Spec.MinAvailable.IntValue() >= int(*dep.Spec.Replicas) {
		t.Errorf("minAvailable %v of %d replicas: a drain must be able to move one", pdb.Spec.MinAvailable, *dep.Spec.Replicas)
	}
	if _, ok := cm.Data["warden.yaml"]; !ok {
		t.Error("the ConfigMap holds no warden.yaml")
	}
}

// TestDockerfile runs BuildKit's checks of the Dockerfile, the ones
// "docker build --check" runs (its check directive turns on the
// experimental rules; any warning fails the test), and checks the image's structure with BuildKit's parser: a build
// stage and a distroless final stage, a non-root user, the data directory
// a volume, a health check through "warden health". No registry is
// reachable here: the base images' configurations come from offline, a
// stand-in that answers an empty linux/amd64 image for any reference.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src := llb.Scratch()
	sm := llb.NewSourceMap(&src, "Dockerfile", "Dockerfile", data)
	if sm.Definition, err = src.Marshal(ctx); err != nil {
		t.Fatal(err)
	}
	lint, err := dockerfile2llb.DockerfileLint(ctx, data, dockerfile2llb.ConvertOpt{
		SourceMap: sm, MetaResolver: offline{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if lint.Error != nil {
		t.Errorf("Dockerfile: %s", lint.Error.Message)
	}
	for _, w := range lint.Warnings {
		line := int32(0)
		if len(w.Location.Ranges) > 0 {
			line = w.Location.Ranges[0].Start.Line
		}
		t.Errorf("Dockerfile:%d: %s: %s (%s)", line, w.RuleName, w.Detail, w.URL)
	}

	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].Name != "build" || !strings.HasPrefix(stages[1].BaseName, "gcr.io/distroless/static") {
		t.Fatalf("stages %+v, want a build stage and a distroless static final stage", stages)
	}
	var user string
	var volumes, health []string
	for _, c := range stages[1].Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.VolumeCommand:
			volumes = append(volumes, c.Volumes...)
		case *instructions.HealthCheckCommand:
			health = c.Health.Test
		}
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("USER %q, want a non-root user", user)
	}
	if !slices.Equal(volumes, []string{"/var/lib/warden"}) || !slices.Equal(health, []string{"CMD", "/warden", "health"}) {
		t.Errorf("VOLUME %q, HEALTHCHECK %q; want the data directory, and warden health", volumes, health)
	}
}

// offline answers every base image with an empty linux/amd64 image
// configuration, in place of a registry.
type offline struct{}

func (offline) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	return ref, digest.FromString(ref), []byte(`{"architecture":"amd64","os":"linux","config":{}}`), nil
}
