// helm-render renders a Helm chart the way `helm template` does, for tests on machines without the helm binary:
// Go's text/template with the Sprig function library (the same engine and functions Helm uses) plus Helm's own
// functions (include, tpl, required, toYaml, fromYaml, fromYamlArray, toJson, fromJson, lookup), Helm's built-in objects
// (.Values, .Release, .Chart, .Capabilities, .Template, .Files) and Helm's value semantics (numbers are float64, as
// after Helm's YAML -> JSON decoding; a null in a user values file deletes the key).
//
// Differences from Helm, on purpose: missing keys are an error by default (like `helm lint --strict`), so a
// template that reads a value absent from values.yaml fails; values.schema.json is validated by the caller; no
// subcharts, `lookup` finds only the -existing objects (none by default, as under `helm template`), no hooks ordering.
//
// Usage: helm-render [-release NAME] [-namespace NS] [-kube-version 1.30.0] [-f values.yaml]... [-existing FILE]
// [-notes] CHART_DIR. -existing: the objects `lookup` finds, as in the cluster of an upgrade (default: none).
// Prints the manifests as a YAML stream, each prefixed by "# Source: <chart>/templates/<file>"; with -notes, prints
// the rendered NOTES.txt instead. Exit status 1 with the error on stderr when rendering fails.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig/v3"
	yamlv2 "gopkg.in/yaml.v2"
	yamlv3 "gopkg.in/yaml.v3"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

// Files is .Files: the chart's non-template files.
type Files map[string][]byte

func (f Files) Get(name string) string { return string(f[name]) }
func (f Files) GetBytes(name string) []byte {
	return f[name]
}

// APIVersions is .Capabilities.APIVersions.
type APIVersions []string

func (a APIVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

func main() {
	release := flag.String("release", "rtmp-relay", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "1.30.0", "Kubernetes version for .Capabilities")
	lenient := flag.Bool("lenient", false, "missing keys render as empty (Helm's default) instead of failing")
	notes := flag.Bool("notes", false, "print the rendered NOTES.txt instead of the manifests")
	existingFile := flag.String("existing", "", "YAML stream of objects `lookup` finds (the cluster of an upgrade)")
	var files valueFiles
	flag.Var(&files, "f", "values file (repeatable; later files win)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helm-render [flags] CHART_DIR")
		os.Exit(2)
	}
	existing, err := readObjects(*existingFile, *namespace)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helm-render:", err)
		os.Exit(1)
	}
	out, err := render(flag.Arg(0), *release, *namespace, *kubeVersion, files, existing, *lenient, *notes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helm-render:", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

// jsonish converts YAML-decoded data to what Helm sees after sigs.k8s.io/yaml: JSON types, numbers as float64.
func jsonish(v interface{}) (interface{}, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out interface{}
	err = json.Unmarshal(b, &out)
	return out, err
}

func readYAML(file string) (map[string]interface{}, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var raw interface{}
	if err := yamlv3.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	v, err := jsonish(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	m, ok := v.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: not a mapping", file)
	}
	return m, nil
}

// merge overlays src onto dst like Helm's coalescing: maps merge recursively, other values replace, null deletes.
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, sv := range src {
		if sv == nil {
			delete(dst, k)
			continue
		}
		sm, sIsMap := sv.(map[string]interface{})
		dm, dIsMap := dst[k].(map[string]interface{})
		if sIsMap && dIsMap {
			dst[k] = merge(dm, sm)
		} else {
			dst[k] = sv
		}
	}
	return dst
}

func toYAML(v interface{}) (string, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var obj interface{}
	if err := yamlv2.Unmarshal(j, &obj); err != nil {
		return "", err
	}
	b, err := yamlv2.Marshal(obj)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// readObjects reads a YAML stream of Kubernetes objects; objects without a namespace get `namespace`.
func readObjects(file, namespace string) ([]map[string]interface{}, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []map[string]interface{}
	dec := yamlv3.NewDecoder(bytes.NewReader(b))
	for {
		var raw interface{}
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		v, err := jsonish(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		o, ok := v.(map[string]interface{})
		if !ok {
			continue
		}
		meta, _ := o["metadata"].(map[string]interface{})
		if meta == nil {
			return nil, fmt.Errorf("%s: an object without metadata", file)
		}
		if _, ok := meta["namespace"]; !ok {
			meta["namespace"] = namespace
		}
		out = append(out, o)
	}
}

func render(chartDir, release, namespace, kubeVersion string, valueFiles []string, existing []map[string]interface{}, lenient, notesOnly bool) (string, error) {
	chartFile, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	chartName, _ := chartFile["name"].(string)
	if chartName == "" {
		return "", errors.New("Chart.yaml has no name")
	}
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return "", err
	}
	for _, f := range valueFiles {
		user, err := readYAML(f)
		if err != nil {
			return "", err
		}
		values = merge(values, user)
	}

	// .Chart has Helm's field names (Chart.yaml keys, capitalized).
	chart := map[string]interface{}{}
	for k, v := range chartFile {
		chart[strings.ToUpper(k[:1])+k[1:]] = v
	}

	files := Files{}
	var templates []string
	sources := map[string]string{}
	err = filepath.WalkDir(chartDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(chartDir, p)
		rel = filepath.ToSlash(rel)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasPrefix(rel, "templates/") {
			name := path.Join(chartName, rel)
			templates = append(templates, name)
			sources[name] = string(b)
		} else if rel != "Chart.yaml" && rel != "values.yaml" && rel != "values.schema.json" {
			files[rel] = b
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(templates)

	kv := strings.TrimPrefix(kubeVersion, "v")
	parts := strings.SplitN(kv, ".", 3)
	if len(parts) < 2 {
		return "", fmt.Errorf("bad -kube-version %q", kubeVersion)
	}
	capabilities := map[string]interface{}{
		"KubeVersion": map[string]interface{}{"Version": "v" + kv, "GitVersion": "v" + kv, "Major": parts[0], "Minor": parts[1]},
		"APIVersions": APIVersions{"v1", "apps/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1", "monitoring.coreos.com/v1"},
		"HelmVersion": map[string]interface{}{"Version": "v3.15.0"},
	}
	releaseObj := map[string]interface{}{
		"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": len(existing) == 0, "IsUpgrade": len(existing) > 0, "Revision": 1,
	}

	root := template.New("gotpl")
	if lenient {
		root.Option("missingkey=zero")
	} else {
		root.Option("missingkey=error")
	}
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	includeDepth := 0
	funcs["include"] = func(name string, data interface{}) (string, error) {
		includeDepth++
		defer func() { includeDepth-- }()
		if includeDepth > 100 {
			return "", fmt.Errorf("include %q: recursion too deep", name)
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["toYaml"] = func(v interface{}) string {
		s, err := toYAML(v)
		if err != nil {
			return ""
		}
		return s
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		var raw interface{}
		if err := yamlv3.Unmarshal([]byte(s), &raw); err != nil {
			return map[string]interface{}{"Error": err.Error()}
		}
		v, err := jsonish(raw)
		if err != nil {
			return map[string]interface{}{"Error": err.Error()}
		}
		m, _ := v.(map[string]interface{})
		return m
	}
	funcs["fromYamlArray"] = func(s string) []interface{} {
		var raw interface{}
		if err := yamlv3.Unmarshal([]byte(s), &raw); err != nil {
			return []interface{}{err.Error()}
		}
		v, err := jsonish(raw)
		if err != nil {
			return []interface{}{err.Error()}
		}
		a, _ := v.([]interface{})
		return a
	}
	funcs["toJson"] = func(v interface{}) string {
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	}
	funcs["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	// As under `helm template` (no cluster) every lookup finds nothing, unless -existing gave the cluster's objects
	// (an upgrade). Like Helm, an empty name lists the kind: {"items": [...]}.
	funcs["lookup"] = func(apiVersion, kind, ns, name string) (map[string]interface{}, error) {
		var items []interface{}
		for _, o := range existing {
			meta, _ := o["metadata"].(map[string]interface{})
			if o["apiVersion"] != apiVersion || o["kind"] != kind || (ns != "" && meta["namespace"] != ns) {
				continue
			}
			if name == "" {
				items = append(items, o)
			} else if meta["name"] == name {
				return o, nil
			}
		}
		if name == "" && len(items) > 0 {
			return map[string]interface{}{"items": items}, nil
		}
		return map[string]interface{}{}, nil
	}
	root.Funcs(funcs)
	for _, name := range templates {
		if _, err := root.New(name).Parse(sources[name]); err != nil {
			return "", err
		}
	}

	var out strings.Builder
	for _, name := range templates {
		base := path.Base(name)
		isNotes := base == "NOTES.txt"
		if strings.HasPrefix(base, "_") || isNotes != notesOnly {
			continue
		}
		if !isNotes && !strings.HasSuffix(base, ".yaml") && !strings.HasSuffix(base, ".yml") && !strings.HasSuffix(base, ".tpl") {
			continue
		}
		data := map[string]interface{}{
			"Values":       values,
			"Release":      releaseObj,
			"Chart":        chart,
			"Capabilities": capabilities,
			"Files":        files,
			"Template":     map[string]interface{}{"Name": name, "BasePath": path.Join(chartName, "templates")},
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if notesOnly {
			out.WriteString(text)
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", name, strings.TrimLeft(text, "\n"))
	}
	return out.String(), nil
}
