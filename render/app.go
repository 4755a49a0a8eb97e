package render

import (
	"sort"

	"k8s.io/apimachinery/pkg/util/validation"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// defaultApp fills in what the App CRD's defaults would, so that the object
// applied and the children rendered from it agree with what the API server
// stores.
func defaultApp(a *v1alpha1.App) {
	s := &a.Spec
	if s.Port == 0 {
		s.Port = 8080
	}
	if s.Replicas == nil {
		one := int32(1)
		s.Replicas = &one
	}
	if s.Postgres != nil && s.Postgres.Env == "" {
		s.Postgres.Env = "DATABASE_URL"
	}
	if s.Autoscale != nil {
		if s.Autoscale.Min == 0 {
			s.Autoscale.Min = 1
		}
		if s.Autoscale.CPUPercent == 0 {
			s.Autoscale.CPUPercent = 80
		}
	}
}

// validateApp checks an App after defaulting: what the CRD schema checks,
// and what only a renderer can see (an env variable set twice).
func validateApp(d *document, a *v1alpha1.App) []Problem {
	c := &checker{d: d}
	s := &a.Spec
	spec := field("spec")
	// The Service is named after the App, and Service names are DNS-1035 labels.
	c.objectName(a.Name, validation.IsDNS1035Label)
	c.image(spec.at("image"), s.Image)
	c.between(spec.at("port"), s.Port, 1, 65535)
	if s.Replicas != nil {
		c.atLeast(spec.at("replicas"), *s.Replicas, 0)
	}
	validateAppEnv(c, s)
	validateAppIngress(c, s)
	if h := s.HealthCheck; h != nil {
		p := spec.at("healthCheck")
		if len(h.Path) == 0 || h.Path[0] != '/' {
			c.add(p.at("path"), "%q must start with /", h.Path)
		}
		c.atLeast(p.at("initialDelaySeconds"), h.InitialDelaySeconds, 0)
		c.atLeast(p.at("periodSeconds"), h.PeriodSeconds, 0)
	}
	if r := s.Resources; r != nil {
		c.quantity(spec.at("resources", "cpu"), r.CPU)
		c.quantity(spec.at("resources", "memory"), r.Memory)
	}
	if as := s.Autoscale; as != nil {
		p := spec.at("autoscale")
		c.atLeast(p.at("min"), as.Min, 1)
		c.atLeast(p.at("max"), as.Max, 1)
		if as.Min > as.Max {
			c.add(p, "min (%d) must not exceed max (%d)", as.Min, as.Max)
		}
		c.between(p.at("cpuPercent"), as.CPUPercent, 1, 100)
	}
	return c.problems
}

// validateAppEnv checks the variables from env, secretEnv and postgres,
// which end up in one list where a name may appear only once.
func validateAppEnv(c *checker, s *v1alpha1.AppSpec) {
	spec := field("spec")
	envNames := map[string]fieldPath{}
	claim := func(name string, p fieldPath) {
		if first, dup := envNames[name]; dup {
			c.add(p, "environment variable %s is also set by %s", name, first)
			return
		}
		envNames[name] = p
	}
	for _, k := range sortedStrings(s.Env) {
		c.envName(spec.at("env", k), k)
		claim(k, spec.at("env", k))
	}
	for _, k := range sortedSecretKeys(s.SecretEnv) {
		p := spec.at("secretEnv", k)
		c.envName(p, k)
		claim(k, p)
		ref := s.SecretEnv[k]
		if c.required(p.at("secret"), ref.Secret) {
			c.errs(p.at("secret"), ref.Secret, validation.IsDNS1123Subdomain(ref.Secret))
		}
		if c.required(p.at("key"), ref.Key) {
			c.errs(p.at("key"), ref.Key, validation.IsConfigMapKey(ref.Key))
		}
	}
	if pg := s.Postgres; pg != nil {
		p := spec.at("postgres")
		if c.required(p.at("name"), pg.Name) {
			c.errs(p.at("name"), pg.Name, validation.IsDNS1035Label(pg.Name))
		}
		c.envName(p.at("env"), pg.Env)
		claim(pg.Env, p.at("env"))
	}
}

// validateAppIngress checks domains, TLS and the ingress class.
func validateAppIngress(c *checker, s *v1alpha1.AppSpec) {
	spec := field("spec")
	seen := map[string]bool{}
	for i, host := range s.Domains {
		c.domain(spec.at("domains").index(i), host)
		if seen[host] {
			c.add(spec.at("domains").index(i), "%q is listed twice", host)
		}
		seen[host] = true
	}
	if t := s.TLS; t != nil {
		p := spec.at("tls")
		switch {
		case t.SecretName != "" && t.Issuer != "":
			c.add(p, "set exactly one of secretName and issuer, not both")
		case t.SecretName == "" && t.Issuer == "":
			c.add(p, "set exactly one of secretName and issuer")
		case t.SecretName != "":
			c.errs(p.at("secretName"), t.SecretName, validation.IsDNS1123Subdomain(t.SecretName))
		default:
			c.errs(p.at("issuer"), t.Issuer, validation.IsDNS1123Subdomain(t.Issuer))
		}
		if len(s.Domains) == 0 {
			c.add(p, "tls needs at least one entry in spec.domains")
		}
	}
	if s.IngressClassName != nil {
		c.errs(spec.at("ingressClassName"), *s.IngressClassName, validation.IsDNS1123Subdomain(*s.IngressClassName))
	}
}

// appChildren renders an App's Deployment, Service, and (when asked for)
// Ingress and HorizontalPodAutoscaler, in that order.
func appChildren(a *v1alpha1.App) []map[string]interface{} {
	children := []map[string]interface{}{appDeployment(a), appService(a)}
	if len(a.Spec.Domains) > 0 {
		children = append(children, appIngress(a))
	}
	if a.Spec.Autoscale != nil {
		children = append(children, appHPA(a))
	}
	return children
}

func appLabels(a *v1alpha1.App) map[string]interface{} {
	return map[string]interface{}{
		v1alpha1.LabelName:      a.Name,
		v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue,
	}
}

func childMeta(a *v1alpha1.App, name string) map[string]interface{} {
	m := map[string]interface{}{"name": name, "labels": appLabels(a)}
	if a.Namespace != "" {
		m["namespace"] = a.Namespace
	}
	return m
}

func appDeployment(a *v1alpha1.App) map[string]interface{} {
	s := &a.Spec
	container := map[string]interface{}{
		"name":  "app",
		"image": s.Image,
		"ports": []interface{}{map[string]interface{}{
			"name": "http", "containerPort": int64(s.Port), "protocol": "TCP",
		}},
	}
	if len(s.Command) > 0 {
		container["command"] = stringList(s.Command)
	}
	if len(s.Args) > 0 {
		container["args"] = stringList(s.Args)
	}
	if env := appEnv(a); len(env) > 0 {
		container["env"] = env
	}
	if h := s.HealthCheck; h != nil {
		period := int64(h.PeriodSeconds)
		if period == 0 {
			period = 10
		}
		probe := func(delay int64) map[string]interface{} {
			return map[string]interface{}{
				"httpGet":             map[string]interface{}{"path": h.Path, "port": int64(s.Port)},
				"initialDelaySeconds": delay,
				"periodSeconds":       period,
			}
		}
		// Readiness starts at once so a new pod takes traffic as soon as it
		// can; liveness waits, so a slow start is not mistaken for a hang.
		container["readinessProbe"] = probe(0)
		container["livenessProbe"] = probe(int64(h.InitialDelaySeconds))
	}
	if r := s.Resources; r != nil && (r.CPU != "" || r.Memory != "") {
		requests := map[string]interface{}{}
		res := map[string]interface{}{"requests": requests}
		if r.CPU != "" {
			requests["cpu"] = r.CPU
		}
		if r.Memory != "" {
			requests["memory"] = r.Memory
			res["limits"] = map[string]interface{}{"memory": r.Memory}
		}
		container["resources"] = res
	}
	podSpec := map[string]interface{}{
		"containers": []interface{}{container},
	}
	mountPostgresCA(a, container, podSpec)
	spec := map[string]interface{}{
		"selector": map[string]interface{}{"matchLabels": map[string]interface{}{v1alpha1.LabelName: a.Name}},
		"strategy": map[string]interface{}{
			"type": "RollingUpdate",
			// Zero downtime: never take a serving pod away before its
			// replacement is ready.
			"rollingUpdate": map[string]interface{}{"maxUnavailable": int64(0), "maxSurge": int64(1)},
		},
		"template": map[string]interface{}{
			"metadata": map[string]interface{}{"labels": appLabels(a)},
			"spec":     podSpec,
		},
	}
	if s.Autoscale == nil && s.Replicas != nil {
		// With autoscale the HPA owns the replica count; setting it here
		// would make every sync fight the HPA.
		spec["replicas"] = int64(*s.Replicas)
	}
	return map[string]interface{}{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   childMeta(a, a.Name),
		"spec":       spec,
	}
}

// mountPostgresCA mounts the ca.crt of the Postgres's app Secret where the
// injected DATABASE_URL's sslrootcert names it (v1alpha1.PostgresCADir).
func mountPostgresCA(a *v1alpha1.App, container, podSpec map[string]interface{}) {
	pg := a.Spec.Postgres
	if pg == nil {
		return
	}
	container["volumeMounts"] = []interface{}{map[string]interface{}{
		"name": "postgres-ca", "mountPath": v1alpha1.PostgresCADir(pg.Name), "readOnly": true,
	}}
	podSpec["volumes"] = []interface{}{map[string]interface{}{
		"name": "postgres-ca",
		"secret": map[string]interface{}{
			"secretName": pg.Name + "-app",
			"items":      []interface{}{map[string]interface{}{"key": "ca.crt", "path": "ca.crt"}},
		},
	}}
}

// appEnv merges plain, secret and database variables, sorted by name so that
// map order never changes the rendered Deployment.
func appEnv(a *v1alpha1.App) []interface{} {
	s := &a.Spec
	type entry struct {
		name string
		v    map[string]interface{}
	}
	var entries []entry
	for k, v := range s.Env {
		entries = append(entries, entry{k, map[string]interface{}{"name": k, "value": v}})
	}
	secretRef := func(name, secret, key string) map[string]interface{} {
		return map[string]interface{}{"name": name, "valueFrom": map[string]interface{}{
			"secretKeyRef": map[string]interface{}{"name": secret, "key": key},
		}}
	}
	for k, ref := range s.SecretEnv {
		entries = append(entries, entry{k, secretRef(k, ref.Secret, ref.Key)})
	}
	if pg := s.Postgres; pg != nil {
		entries = append(entries, entry{pg.Env, secretRef(pg.Env, pg.Name+"-app", "uri")})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	out := make([]interface{}, len(entries))
	for i, e := range entries {
		out[i] = e.v
	}
	return out
}

func appService(a *v1alpha1.App) map[string]interface{} {
	return map[string]interface{}{
		"apiVersion": "v1",
		"kind":       "Service",
		"metadata":   childMeta(a, a.Name),
		"spec": map[string]interface{}{
			"type":     "ClusterIP",
			"selector": map[string]interface{}{v1alpha1.LabelName: a.Name},
			"ports": []interface{}{map[string]interface{}{
				"name": "http", "port": int64(80), "targetPort": int64(a.Spec.Port), "protocol": "TCP",
			}},
		},
	}
}

func appIngress(a *v1alpha1.App) map[string]interface{} {
	s := &a.Spec
	meta := childMeta(a, a.Name)
	var rules []interface{}
	for _, host := range s.Domains {
		rules = append(rules, map[string]interface{}{
			"host": host,
			"http": map[string]interface{}{"paths": []interface{}{map[string]interface{}{
				"path":     "/",
				"pathType": "Prefix",
				"backend": map[string]interface{}{"service": map[string]interface{}{
					"name": a.Name, "port": map[string]interface{}{"number": int64(80)},
				}},
			}}},
		})
	}
	spec := map[string]interface{}{"rules": rules}
	if s.IngressClassName != nil {
		spec["ingressClassName"] = *s.IngressClassName
	}
	if t := s.TLS; t != nil {
		secret := t.SecretName
		if t.Issuer != "" {
			secret = a.Name + "-tls"
			meta["annotations"] = map[string]interface{}{"cert-manager.io/cluster-issuer": t.Issuer}
		}
		spec["tls"] = []interface{}{map[string]interface{}{"hosts": stringList(s.Domains), "secretName": secret}}
	}
	return map[string]interface{}{
		"apiVersion": "networking.k8s.io/v1",
		"kind":       "Ingress",
		"metadata":   meta,
		"spec":       spec,
	}
}

func appHPA(a *v1alpha1.App) map[string]interface{} {
	as := a.Spec.Autoscale
	return map[string]interface{}{
		"apiVersion": "autoscaling/v2",
		"kind":       "HorizontalPodAutoscaler",
		"metadata":   childMeta(a, a.Name),
		"spec": map[string]interface{}{
			"scaleTargetRef": map[string]interface{}{"apiVersion": "apps/v1", "kind": "Deployment", "name": a.Name},
			"minReplicas":    int64(as.Min),
			"maxReplicas":    int64(as.Max),
			"metrics": []interface{}{map[string]interface{}{
				"type": "Resource",
				"resource": map[string]interface{}{
					"name":   "cpu",
					"target": map[string]interface{}{"type": "Utilization", "averageUtilization": int64(as.CPUPercent)},
				},
			}},
		},
	}
}

func stringList(s []string) []interface{} {
	out := make([]interface{}, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func sortedStrings(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedSecretKeys(m map[string]v1alpha1.SecretKeySelector) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
