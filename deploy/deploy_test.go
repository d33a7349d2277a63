// Package deploy holds Warden's container image and Kubernetes manifests.
// No container engine or cluster runs where Warden is built and tested, so
// this test checks the manifests against Kubernetes' own API types (strict
// decoding: a misspelt field is an error) and the promises the manifests
// make, and the Dockerfile for its structure; deploy/README in docs/deploy.md.
package deploy

import (
	"bufio"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
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

// TestDockerfile checks the image's structure: a build stage and a
// distroless final stage, a non-root user, the data directory a volume, a
// health check through "warden health".
func TestDockerfile(t *testing.T) {
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var from []string
	has := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		if word == "FROM" {
			from = append(from, rest)
		}
		has[word] = rest
	}
	if len(from) != 2 || !strings.HasSuffix(from[0], " AS build") || !strings.Contains(from[1], "distroless/static") {
		t.Errorf("stages %v, want a build stage and a distroless static final stage", from)
	}
	if u := has["USER"]; u == "" || strings.HasPrefix(u, "root") || strings.HasPrefix(u, "0") {
		t.Errorf("USER %q, want a non-root user", u)
	}
	if !strings.Contains(has["VOLUME"], "/var/lib/warden") || !strings.Contains(has["HEALTHCHECK"], `"/warden", "health"`) {
		t.Errorf("VOLUME %q, HEALTHCHECK %q", has["VOLUME"], has["HEALTHCHECK"])
	}
}
