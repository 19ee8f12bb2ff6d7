package contrib_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// container is the part of a Kubernetes container the test reads.
type container struct {
	Name           string   `yaml:"name"`
	Args           []string `yaml:"args"`
	RestartPolicy  string   `yaml:"restartPolicy"`
	StartupProbe   probe    `yaml:"startupProbe"`
	ReadinessProbe probe    `yaml:"readinessProbe"`
	LivenessProbe  probe    `yaml:"livenessProbe"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port int    `yaml:"port"`
	} `yaml:"httpGet"`
}

// TestKubernetesExample: the init container restores only what is missing,
// the sidecar replicates and is probed on /healthz at walship.yml's addr.
func TestKubernetesExample(t *testing.T) {
	b, err := os.ReadFile("kubernetes/walship.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var initContainers []container
	var config string
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
			Spec struct {
				Template struct {
					Spec struct {
						InitContainers []container `yaml:"initContainers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		switch doc.Kind {
		case "ConfigMap":
			config = doc.Data["walship.yml"]
		case "StatefulSet":
			initContainers = doc.Spec.Template.Spec.InitContainers
		}
	}
	if !strings.Contains(config, `addr: ":9090"`) {
		t.Errorf("the config does not serve /healthz on :9090:\n%s", config)
	}
	if len(initContainers) != 2 {
		t.Fatalf("%d init containers, want restore and the walship sidecar", len(initContainers))
	}
	restore, sidecar := initContainers[0], initContainers[1]
	for _, flag := range []string{"restore", "-if-db-not-exists", "-if-replica-exists"} {
		if !slices.Contains(restore.Args, flag) {
			t.Errorf("the restore container's args %q lack %s", restore.Args, flag)
		}
	}
	if sidecar.RestartPolicy != "Always" || !slices.Contains(sidecar.Args, "replicate") {
		t.Errorf("the sidecar (%q, restartPolicy %q) is not a replicating native sidecar", sidecar.Args, sidecar.RestartPolicy)
	}
	for name, p := range map[string]probe{"startupProbe": sidecar.StartupProbe, "readinessProbe": sidecar.ReadinessProbe, "livenessProbe": sidecar.LivenessProbe} {
		if p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port != 9090 {
			t.Errorf("%s reads %q on port %d, want /healthz on 9090", name, p.HTTPGet.Path, p.HTTPGet.Port)
		}
	}
}

func TestComposeExample(t *testing.T) {
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Command   []string       `yaml:"command"`
			User      string         `yaml:"user"`
			DependsOn map[string]any `yaml:"depends_on"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	restore, walship := compose.Services["restore"], compose.Services["walship"]
	if !slices.Contains(restore.Command, "-if-db-not-exists") {
		t.Errorf("restore runs %q", restore.Command)
	}
	if !slices.Contains(walship.Command, "replicate") || walship.DependsOn["restore"] == nil {
		t.Errorf("walship runs %q after %v", walship.Command, walship.DependsOn)
	}
	for name, s := range compose.Services {
		if s.User == "" || strings.HasPrefix(s.User, "0") {
			t.Errorf("service %s runs as %q, not as the image's user", name, s.User)
		}
	}
}
