package validate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The API groups the manifests may use. Anything else fails to decode,
// which is the point: a kind we do not check is a kind we do not ship.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strictDecoder rejects unknown and duplicate fields, as kubectl apply
// --validate=strict does.
var strictDecoder = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// DecodeStrict decodes every document of a multi-document YAML stream into
// its typed Kubernetes object.
func DecodeStrict(data []byte) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []runtime.Object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := strictDecoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		out = append(out, obj)
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// Kustomize builds the kustomization in dir as `kubectl kustomize
// --load-restrictor=LoadRestrictionsNone dir` does: the rules ConfigMap
// reads victoria/rules, outside dir.
func Kustomize(dir string) ([]byte, error) {
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = kusttypes.LoadRestrictionsNone
	k := krusty.MakeKustomizer(opts)
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return m.AsYaml()
}

// Manifests indexes the objects of one build by kind and name.
type Manifests struct {
	Objects      []runtime.Object
	Namespaces   map[string]*corev1.Namespace
	Services     map[string]*corev1.Service
	ConfigMaps   map[string]*corev1.ConfigMap
	Secrets      map[string]*corev1.Secret
	StatefulSets map[string]*appsv1.StatefulSet
	Deployments  map[string]*appsv1.Deployment
	PDBs         map[string]*policyv1.PodDisruptionBudget
}

// NewManifests indexes objs; two objects of one kind and name are an error.
func NewManifests(objs []runtime.Object) (*Manifests, error) {
	m := &Manifests{
		Namespaces: map[string]*corev1.Namespace{}, Services: map[string]*corev1.Service{},
		ConfigMaps: map[string]*corev1.ConfigMap{}, Secrets: map[string]*corev1.Secret{}, StatefulSets: map[string]*appsv1.StatefulSet{},
		Deployments: map[string]*appsv1.Deployment{}, PDBs: map[string]*policyv1.PodDisruptionBudget{},
		Objects: objs,
	}
	var dup []string
	put := func(kind, name string, seen bool) {
		if seen {
			dup = append(dup, kind+"/"+name)
		}
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Namespace:
			_, seen := m.Namespaces[o.Name]
			put("Namespace", o.Name, seen)
			m.Namespaces[o.Name] = o
		case *corev1.Service:
			_, seen := m.Services[o.Name]
			put("Service", o.Name, seen)
			m.Services[o.Name] = o
		case *corev1.ConfigMap:
			_, seen := m.ConfigMaps[o.Name]
			put("ConfigMap", o.Name, seen)
			m.ConfigMaps[o.Name] = o
		case *corev1.Secret:
			_, seen := m.Secrets[o.Name]
			put("Secret", o.Name, seen)
			m.Secrets[o.Name] = o
		case *appsv1.StatefulSet:
			_, seen := m.StatefulSets[o.Name]
			put("StatefulSet", o.Name, seen)
			m.StatefulSets[o.Name] = o
		case *appsv1.Deployment:
			_, seen := m.Deployments[o.Name]
			put("Deployment", o.Name, seen)
			m.Deployments[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			_, seen := m.PDBs[o.Name]
			put("PodDisruptionBudget", o.Name, seen)
			m.PDBs[o.Name] = o
		default:
			return nil, fmt.Errorf("object of type %T is not indexed; add it to Manifests and check it", o)
		}
	}
	if len(dup) > 0 {
		return nil, fmt.Errorf("defined twice: %s", strings.Join(dup, ", "))
	}
	return m, nil
}

// Workload is a Deployment or a StatefulSet, seen through what the checks
// need.
type Workload struct {
	Kind, Name  string
	Replicas    int
	Selector    map[string]string
	Pod         *corev1.PodTemplateSpec
	ServiceName string                         // StatefulSet only
	Claims      []corev1.PersistentVolumeClaim // StatefulSet only
}

// Workloads lists every Deployment and StatefulSet, sorted by name.
func (m *Manifests) Workloads() []Workload {
	var out []Workload
	for _, d := range m.Deployments {
		out = append(out, Workload{Kind: "Deployment", Name: d.Name, Replicas: replicas(d.Spec.Replicas),
			Selector: selector(d.Spec.Selector.MatchLabels), Pod: &d.Spec.Template})
	}
	for _, s := range m.StatefulSets {
		out = append(out, Workload{Kind: "StatefulSet", Name: s.Name, Replicas: replicas(s.Spec.Replicas),
			Selector: selector(s.Spec.Selector.MatchLabels), Pod: &s.Spec.Template,
			ServiceName: s.Spec.ServiceName, Claims: s.Spec.VolumeClaimTemplates})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Workload finds a Deployment or StatefulSet by name.
func (m *Manifests) Workload(name string) (Workload, bool) {
	for _, w := range m.Workloads() {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

func replicas(r *int32) int {
	if r == nil {
		return 1 // the API's default
	}
	return int(*r)
}

func selector(l map[string]string) map[string]string { return l }

// PodName is the name (and hostname) of a StatefulSet's pod i.
func (w Workload) PodName(i int) string { return w.Name + "-" + strconv.Itoa(i) }

// PodDNS is the stable DNS name of a StatefulSet's pod i inside its
// namespace: <pod>.<governing headless Service>.
func (w Workload) PodDNS(i int) string { return w.PodName(i) + "." + w.ServiceName }

// Container returns the pod's container of that name.
func (w Workload) Container(name string) (*corev1.Container, bool) {
	for i := range w.Pod.Spec.Containers {
		if w.Pod.Spec.Containers[i].Name == name {
			return &w.Pod.Spec.Containers[i], true
		}
	}
	return nil, false
}

// ContainerPort finds a port of any container of the pod by number.
func (w Workload) ContainerPort(port int) (*corev1.ContainerPort, bool) {
	for _, c := range w.Pod.Spec.Containers {
		for i := range c.Ports {
			if int(c.Ports[i].ContainerPort) == port {
				return &c.Ports[i], true
			}
		}
	}
	return nil, false
}

// NamedPort finds a port of any container of the pod by name.
func (w Workload) NamedPort(name string) (*corev1.ContainerPort, bool) {
	for _, c := range w.Pod.Spec.Containers {
		for i := range c.Ports {
			if c.Ports[i].Name == name {
				return &c.Ports[i], true
			}
		}
	}
	return nil, false
}

// Selected returns the workloads whose pods a Service selects.
func (m *Manifests) Selected(svc *corev1.Service) []Workload {
	var out []Workload
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	for _, w := range m.Workloads() {
		if sel.Matches(labels.Set(w.Pod.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

// TargetPort resolves a Service port's targetPort to the container port of
// workload w.
func TargetPort(w Workload, sp corev1.ServicePort) (*corev1.ContainerPort, error) {
	tp := sp.TargetPort
	if tp.Type == intstr.String && tp.StrVal != "" {
		cp, ok := w.NamedPort(tp.StrVal)
		if !ok {
			return nil, fmt.Errorf("port %s targets named port %q, which %s %s has no container port of that name", sp.Name, tp.StrVal, w.Kind, w.Name)
		}
		return cp, nil
	}
	n := int(sp.Port)
	if tp.IntVal != 0 {
		n = int(tp.IntVal)
	}
	cp, ok := w.ContainerPort(n)
	if !ok {
		return nil, fmt.Errorf("port %s targets %d, which no container of %s %s exposes", sp.Name, n, w.Kind, w.Name)
	}
	return cp, nil
}

// Resolve checks that a host:port used inside the namespace reaches a
// container port: either <service>:<port> of a Service with a workload
// behind it, or <pod>.<headless service>:<port> of a StatefulSet pod that
// exists at the StatefulSet's replica count.
func (m *Manifests) Resolve(hostport string) error {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", hostport, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("%q: port is not a number", hostport)
	}
	if pod, svcName, ok := strings.Cut(host, "."); ok {
		svc, ok := m.Services[svcName]
		if !ok {
			return fmt.Errorf("%s: no Service %q", hostport, svcName)
		}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			return fmt.Errorf("%s: Service %q is not headless (clusterIP: None), so its pods have no DNS names", hostport, svcName)
		}
		for _, w := range m.Selected(svc) {
			if w.Kind != "StatefulSet" || w.ServiceName != svcName {
				continue
			}
			for i := range w.Replicas {
				if w.PodName(i) != pod {
					continue
				}
				if _, ok := w.ContainerPort(port); !ok {
					return fmt.Errorf("%s: pod %s exposes no container port %d", hostport, pod, port)
				}
				return nil
			}
			return fmt.Errorf("%s: StatefulSet %s has %d replicas, so there is no pod %s", hostport, w.Name, w.Replicas, pod)
		}
		return fmt.Errorf("%s: no StatefulSet governed by Service %q", hostport, svcName)
	}
	svc, ok := m.Services[host]
	if !ok {
		return fmt.Errorf("%s: no Service %q", hostport, host)
	}
	for _, sp := range svc.Spec.Ports {
		if int(sp.Port) != port {
			continue
		}
		ws := m.Selected(svc)
		if len(ws) == 0 {
			return fmt.Errorf("%s: Service %q selects no workload", hostport, host)
		}
		for _, w := range ws {
			if _, err := TargetPort(w, sp); err != nil {
				return fmt.Errorf("%s: %w", hostport, err)
			}
		}
		return nil
	}
	return fmt.Errorf("%s: Service %q has no port %d", hostport, host, port)
}
